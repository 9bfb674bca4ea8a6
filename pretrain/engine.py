"""A one-process training engine with the DeepSpeed engine's interface, for machines without DeepSpeed.

``pretrain.train`` drives either this or DeepSpeed (``engine: torch | deepspeed``) with the same loop: forward,
``backward`` (loss scaled by 1 / grad_accum, as DeepSpeed does), ``step`` (an optimizer step every ``grad_accum``
micro-steps, with gradient clipping and DeepSpeed's WarmupDecayLR schedule), checkpoints with a ``latest`` file.
On a GPU: bf16 autocast over float32 weights and the fused AdamW kernel. Checkpoints are safetensors plus JSON (never
pickle), so a resumed run loads nothing executable.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from infra.atomic import atomic_dir, write_text
from seq2seq.schedule import WarmupStableAnnealLR, warmup_decay_lr


class TorchEngine:
    """``param_groups`` as torch optimizers take them. ``plateau``: the ``WarmupStableAnnealLR`` schedule
    (``lr_scheduler``, as DeepSpeed names it) instead of a decay over the run. Both count optimizer steps."""

    def __init__(self, model: torch.nn.Module, param_groups: list[dict], device: torch.device, lr: float, warmup: int,
                 total_steps: int, clip: float, grad_accum: int, bf16: bool, plateau: bool = False):
        self.module, self.device = model.to(device), device
        self.lr, self.warmup, self.total, self.clip, self.grad_accum = lr, warmup, total_steps, clip, grad_accum
        self.bf16 = bf16
        self.optimizer = torch.optim.AdamW(param_groups, lr=lr, fused=True if device.type == "cuda" else None)
        self.lr_scheduler = WarmupStableAnnealLR(self.optimizer, lr, warmup, total_steps) if plateau else None
        self.global_steps, self.micro_steps = 0, 0

    def __call__(self, **inputs):
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.module(**inputs)

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.grad_accum).backward()

    def step(self) -> None:
        self.micro_steps += 1
        if self.micro_steps % self.grad_accum:
            return
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.clip)
        for group in self.optimizer.param_groups:
            group["lr"] = self.get_lr()[0]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_steps += 1
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()

    def get_lr(self) -> list[float]:
        if self.lr_scheduler is not None:
            return self.lr_scheduler.get_last_lr()
        return [warmup_decay_lr(self.global_steps, self.lr, min(self.warmup, self.total), self.total)]

    def zero_optimization_stage(self) -> int:
        return 0

    def save_checkpoint(self, save_dir: str, tag: str, client_state: dict) -> None:
        """``save_dir/tag/`` (model, optimizer state, counters + client state), then ``save_dir/latest``."""
        from safetensors.torch import save_file, save_model

        opt = self.optimizer.state_dict()
        tensors = {f"{p}.{k}": v.contiguous() for p, s in opt["state"].items() for k, v in s.items()}
        with atomic_dir(Path(save_dir) / tag) as tmp:
            save_model(self.module, str(tmp / "model.safetensors"))
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            write_text(tmp / "state.json", json.dumps({
                "global_steps": self.global_steps, "micro_steps": self.micro_steps,
                "lr_scheduler": self.lr_scheduler.state_dict() if self.lr_scheduler else None,
                "param_groups": opt["param_groups"], "client_state": client_state}))
        write_text(Path(save_dir) / "latest", tag)

    def load_checkpoint(self, load_dir: str, tag: str | None = None) -> tuple[str, dict]:
        """The checkpoint ``tag`` (default: the latest) of ``load_dir``."""
        from safetensors.torch import load_file, load_model

        path = Path(load_dir) / (tag or (Path(load_dir) / "latest").read_text().strip())
        load_model(self.module, str(path / "model.safetensors"), device=str(self.device))
        meta = json.loads((path / "state.json").read_text())
        state: dict[int, dict] = {}
        for name, value in load_file(str(path / "optimizer.safetensors"), device=str(self.device)).items():
            p, k = name.split(".", 1)
            state.setdefault(int(p), {})[k] = value
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        self.global_steps, self.micro_steps = meta["global_steps"], meta["micro_steps"]
        if self.lr_scheduler is not None and meta.get("lr_scheduler"):
            self.lr_scheduler.load_state_dict(meta["lr_scheduler"])
        return str(path), meta["client_state"]
