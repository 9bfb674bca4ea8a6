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


def warmup_decay_lr(step: int, lr: float, warmup: int, total: int) -> float:
    """DeepSpeed's WarmupDecayLR (linear warmup from 0, then linear decay to 0 at ``total``) at optimizer step
    ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    return lr * max(0.0, (total - step) / max(total - warmup, 1))


def warmup_decay_fraction(done: float, lr: float, warmup: float) -> float:
    """The same shape over the fraction ``done`` of a run (0 to 1), ``warmup`` a fraction too: how the schedule
    follows a time budget, so that the learning rate reaches 0 when the budget ends."""
    if warmup > 0 and done < warmup:
        return lr * done / warmup
    return lr * max(0.0, (1.0 - done) / max(1.0 - warmup, 1e-9))


def warmup_stable_anneal(done: float, lr: float, warmup: float, annealed: float | None) -> float:
    """Warmup, then a constant rate until an anneal starts, then a linear anneal to 0 (a "WSD" schedule):
    ``done`` and ``warmup`` are fractions of the run as above; ``annealed`` is the fraction of the anneal done
    (None before it starts). The trainer starts the anneal when validation stops improving, or when what is left of
    the run is one anneal long, so the run's length follows the data instead of a budget fixed beforehand."""
    if warmup > 0 and done < warmup:
        return lr * done / warmup
    return lr if annealed is None else lr * max(0.0, 1.0 - annealed)


def run_done(steps: int, total: int, budget=None) -> float:
    """The fraction of a run done (0 to 1): the larger of its optimizer steps' and, with a ``budget`` clock, of its
    time budget's, so that the schedule follows whichever runs out first."""
    return min(max(budget() if budget else 0.0, steps / max(total, 1)), 1.0)


class WarmupStableAnnealLR:
    """``warmup_stable_anneal`` as a scheduler stepped once per optimizer step, by ``TorchEngine`` or by DeepSpeed
    (as a client scheduler, saved in its checkpoints through ``state_dict``). ``warmup`` and ``total`` are optimizer
    steps; ``budget`` (optional): a clock giving the fraction of a time budget spent, which leads when it is ahead."""

    def __init__(self, optimizer, lr: float, warmup: int, total: int, budget=None):
        self.optimizer, self.lr, self.warmup, self.total, self.budget = optimizer, lr, warmup, max(total, 1), budget
        self.steps = 0
        self.anneal: list[int] | None = None  # [first step, steps] once the anneal has started
        self._apply()

    def start_anneal(self, steps: int) -> None:
        self.anneal = [self.steps, max(1, steps)]

    def annealed(self) -> float | None:
        """The fraction of the anneal done (None before it starts)."""
        return None if self.anneal is None else (self.steps - self.anneal[0]) / self.anneal[1]

    def get_last_lr(self) -> list[float]:
        done = run_done(self.steps, self.total, self.budget)
        return [warmup_stable_anneal(done, self.lr, self.warmup / self.total, self.annealed())]

    def step(self, **_) -> None:
        self.steps += 1
        self._apply()

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.get_last_lr()[0]

    def state_dict(self) -> dict:
        return {"steps": self.steps, "anneal": self.anneal}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.anneal = state["steps"], state["anneal"]
        self._apply()


class TorchEngine:
    """``param_groups`` as torch optimizers take them; ``budget``: a clock giving the fraction of a time budget
    spent, which the schedule then follows (whichever of steps and time runs out first). ``plateau``: the
    ``WarmupStableAnnealLR`` schedule (``lr_scheduler``, as DeepSpeed names it) instead of a decay over the run."""

    def __init__(self, model: torch.nn.Module, param_groups: list[dict], device: torch.device, lr: float, warmup: int,
                 total_steps: int, clip: float, grad_accum: int, bf16: bool, budget=None, plateau: bool = False):
        self.module, self.device = model.to(device), device
        self.lr, self.warmup, self.total, self.clip, self.grad_accum = lr, warmup, total_steps, clip, grad_accum
        self.bf16, self.budget = bf16, budget
        self.optimizer = torch.optim.AdamW(param_groups, lr=lr, fused=True if device.type == "cuda" else None)
        self.lr_scheduler = WarmupStableAnnealLR(self.optimizer, lr, warmup, total_steps, budget) if plateau else None
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
        if self.budget is not None:
            done = run_done(self.global_steps, self.total, self.budget)
            return [warmup_decay_fraction(done, self.lr, self.warmup / max(self.total, 1))]
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
