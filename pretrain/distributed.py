"""Processes and engines for the trainer: DeepSpeed's process group (kept on loopback for a run on one machine),
its config, the engine (DeepSpeed or the one-process torch engine), exports gathered from every rank, and the small
collectives the loop needs."""
from __future__ import annotations

import atexit
import os
import socket
from datetime import timedelta
from pathlib import Path

import torch

from pretrain.config import TrainConfig, warmup_of


def ds_config(cfg: TrainConfig, total_steps: int) -> dict:
    """DeepSpeed's config; with ``anneal_patience`` the schedule is ours (``_start_engine``), not a configured one."""
    config = {
        "train_micro_batch_size_per_gpu": cfg.micro_batch,
        "gradient_accumulation_steps": cfg.grad_accum,
        "gradient_clipping": cfg.clip,
        "optimizer": {"type": "AdamW", "params": {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "torch_adam": True}},
        "scheduler": {"type": "WarmupDecayLR", "params": {
            "warmup_min_lr": 0.0, "warmup_max_lr": cfg.lr, "warmup_num_steps": warmup_of(cfg, total_steps),
            "total_num_steps": max(total_steps, 1), "warmup_type": "linear"}},
        "zero_optimization": {"stage": cfg.zero_stage},
        "bf16": {"enabled": cfg.bf16},
        "steps_per_print": 10 ** 9,
        "wall_clock_breakdown": False,
    }
    if cfg.anneal_patience:
        del config["scheduler"]
    return config


def _single_process_env() -> None:
    """Without a launcher: one rank, a free local port (DeepSpeed otherwise goes looking for MPI)."""
    if "RANK" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def _skip_shm_comm_build() -> None:
    """DeepSpeed compiles a shared-memory allreduce op on CPU at first start (~55 s per fresh machine); gloo
    does the collectives without it."""
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def export_hf(engine, tokenizer, out: Path, rank: int, extra: dict | None = None) -> None:
    """Full parameters (gathered under ZeRO-3) saved by rank 0 as safetensors + tokenizer, atomically."""
    from seq2seq.model import save_model

    gather = _null()
    if engine.zero_optimization_stage() == 3:
        import deepspeed

        gather = deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=None)
    with gather:
        if rank == 0:
            save_model(engine.module, tokenizer, out, extra)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def start_engine(cfg: TrainConfig, model, total_steps: int):
    """(engine, rank, world): DeepSpeed (initializing the process group) or the one-process TorchEngine."""
    groups = param_groups(model, cfg.weight_decay, cfg.decay_norms)
    if cfg.engine == "torch":
        from pretrain.engine import TorchEngine

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("engine torch runs in one process; use engine deepspeed under a launcher")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return TorchEngine(model, groups, device, cfg.lr, warmup_of(cfg, total_steps), total_steps, cfg.clip,
                           cfg.grad_accum, cfg.bf16, plateau=cfg.anneal_patience > 0), 0, 1
    import deepspeed
    import torch.distributed as dist

    _skip_shm_comm_build()
    plateau = None
    if cfg.anneal_patience:
        from pretrain.engine import WarmupStableAnnealLR

        plateau = lambda opt: WarmupStableAnnealLR(opt, cfg.lr, warmup_of(cfg, total_steps), total_steps)  # noqa: E731
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=groups, config=ds_config(cfg, total_steps),
                                           lr_scheduler=plateau)
    return engine, dist.get_rank(), dist.get_world_size()


def init_processes(cfg: TrainConfig) -> int:
    """Start DeepSpeed's process group (it must exist before counting steps) and return the processes in this run
    (1 for engine torch)."""
    if cfg.engine == "torch":
        return 1
    import deepspeed
    import torch.distributed as dist

    _single_process_env()
    # rank 0 evaluates on validation at epoch ends while the others wait in a collective: allow hours, not gloo's
    # default 30 minutes
    backend, timeout = "nccl" if torch.cuda.is_available() else "gloo", timedelta(hours=cfg.collective_timeout_hours)
    _skip_shm_comm_build()
    _loopback_process_group(backend, timeout)
    deepspeed.init_distributed(dist_backend=backend, timeout=timeout)  # takes the group made above, if any
    return dist.get_world_size()


def _loopback_process_group(backend: str, timeout: timedelta) -> None:
    """For a run on this machine (MASTER_ADDR on loopback), the process group with its rendezvous store and gloo's
    sockets on 127.0.0.1 only: torch.distributed's store has no authentication and otherwise listens on every
    interface, whatever the master address. A multi-machine run (another MASTER_ADDR) or torchrun's own store is
    left as the launcher set it up."""
    import torch.distributed as dist

    launcher_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    if not _is_loopback(os.environ.get("MASTER_ADDR", "127.0.0.1")) or launcher_store or dist.is_initialized():
        return
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    rank, world, port = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["MASTER_PORT"])
    listener = None
    if rank == 0:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
    store = dist.TCPStore("127.0.0.1", port, world, rank == 0, timeout=timeout,
                          master_listen_fd=listener.fileno() if listener else None)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
    _STORE_SOCKET.append(listener)  # the store serves from this socket for the whole run
    atexit.register(_end_process_group)


def _end_process_group() -> None:
    """At exit, the process group torn down while the interpreter still runs: its threads left to static
    destructors ended finished runs with "terminate called without an active exception" (exit 250)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    for listener in _STORE_SOCKET:
        if listener is not None:
            listener.close()
    _STORE_SOCKET.clear()


_STORE_SOCKET: list = []


def _is_loopback(addr: str) -> bool:
    import ipaddress

    try:
        return addr == "localhost" or ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def share_from_rank0(obj):
    import torch.distributed as dist

    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def param_groups(model, weight_decay: float, decay_norms: bool) -> list[dict]:
    """Weight decay on weight matrices only (layer norms and biases, the 1-D parameters, are left alone, as in
    common practice), unless ``decay_norms``."""
    decay, keep = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if decay_norms or p.ndim >= 2 else keep).append(p)
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0})
            if g["params"]]
