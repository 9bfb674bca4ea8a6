"""The recommender trainer: DeepSpeed ZeRO (stage 1, 2 or 3 from config) over WebDataset shards.

    deepspeed --num_accelerators 2 --module pretrain.train --config configs/beauty.yaml
    python -m pretrain.train --config configs/beauty.yaml          # one process, same code
    python -m pretrain.train --config configs/beauty.yaml --engine torch   # one process, no DeepSpeed needed

CPU uses gloo, CUDA GPUs NCCL and bf16. ``engine: torch`` (pretrain.engine) runs the same loop in one process
without DeepSpeed (bf16 autocast and fused AdamW on a GPU). Micro-batches are formed from windows of samples sorted
by prompt length (less padding; the batches' order is then shuffled with the seed) and tokenized in a background
thread while the model trains. Teacher forcing on (prompt -> target item ID). Checkpoints in DeepSpeed's
format every ``save_every`` optimizer steps and at the end; a relaunch resumes from the latest one, skipping the
micro-batches already done, so it ends with the same parameters as an uninterrupted run (same data order, dropout
seeded per step). At each epoch end the model is exported as a HuggingFace directory (safetensors + tokenizer) and,
if a validation catalog is given, evaluated on the validation split; the best epoch is kept in ``out/best`` and
evaluated on test at the end (model selection on validation, never on test).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the data module is imported where training starts
    from pretrain.data import Redraw

os.environ.setdefault("HF_HUB_OFFLINE", "1")
CPU_RECIPE = Path(__file__).resolve().parent / "recipes" / "quality_cpu.yaml"  # measured by bench/quality.py
log = logging.getLogger("idgenrec.train")


@dataclass
class TrainConfig:
    shards: Path | None = None
    out: Path | None = None
    tokenizer: Path | None = None
    init: Path | None = None
    model_size: str | None = None
    zero_stage: int = 1
    micro_batch: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    clip: float = 1.0
    epochs: int = 1
    save_every: int = 200
    log_every: int = 10
    max_source_tokens: int = 512
    max_target_tokens: int = 32
    loader_workers: int = 0
    bf16: bool = False
    seed: int = 0
    valid_catalog: Path | None = None
    valid_ids: Path | None = None
    eval_beams: int = 20
    eval_batch_size: int = 64
    log_samples: bool = False
    collective_timeout_hours: float = 6.0
    engine: str = "deepspeed"
    length_group_window: int = 32
    time_budget_s: float = 0.0
    max_steps: int = 0
    warmup_ratio: float = 0.0
    label_smoothing: float = 0.1
    dropout: float | None = None
    decay_norms: bool = False
    redraw_templates: bool = False
    history_crop: float = 0.0
    eval_length_penalty: float = 1.0
    eval_repeat_bias_grid: list[float] = field(default_factory=list)
    select_with_repeats: bool = False
    valid_max_users: int = 0
    test_max_users: int = 0
    valid_from: float = 0.0
    anneal_patience: int = 0
    anneal_epochs: float = 1.0
    anneal_from_best: bool = False

    def check(self) -> None:
        if self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"zero_stage must be 0..3, got {self.zero_stage}")
        if self.micro_batch < 1 or self.grad_accum < 1 or self.epochs < 1:
            raise ValueError("micro_batch, grad_accum and epochs must be >= 1")
        if (self.valid_catalog is None) != (self.valid_ids is None):
            raise ValueError("give both valid_catalog and valid_ids, or neither")
        if self.engine not in ("deepspeed", "torch"):
            raise ValueError(f"engine must be deepspeed or torch, got {self.engine!r}")
        if not 0.0 <= self.history_crop <= 1.0:
            raise ValueError(f"history_crop is a share of the samples (0 to 1), got {self.history_crop}")
        if not 0.0 <= self.valid_from <= 1.0:
            raise ValueError(f"valid_from is a fraction of the run (0 to 1), got {self.valid_from}")
        if self.engine == "torch" and self.zero_stage:
            raise ValueError("engine torch is one process: set zero_stage 0")
        if self.anneal_patience < 0 or self.anneal_epochs <= 0:
            raise ValueError("anneal_patience must be >= 0 and anneal_epochs > 0")


HELP = {"micro_batch": "samples per rank per forward/backward pass",
        "warmup_steps": "optimizer steps of linear warmup (warmup_ratio, when > 0, sets it from the run's length)",
        "clip": "gradient-norm clipping threshold", "epochs": "passes over the shards",
        "log_every": "optimizer steps between metrics.jsonl records",
        "max_target_tokens": "target (item ID) tokens kept",
        "loader_workers": "data-loader worker processes per rank (0: in the training process)",
        "eval_beams": "beam width of validation and test (>= 10)",
        "collective_timeout_hours": "how long ranks wait in a collective (rank 0 validates while the others wait)",
        "shards": "folder written by idgenrec shards", "out": "run folder (checkpoints, exports, metrics.jsonl)",
        "tokenizer": "tokenizer directory (when not starting from --init)",
        "init": "HuggingFace T5 directory to start from (e.g. a local t5-small)",
        "model_size": "size when starting fresh: tiny (the default), mini, small or a YAML path; with init it must "
                      "match the checkpoint's architecture",
        "zero_stage": "DeepSpeed ZeRO stage 0-3", "grad_accum": "micro-batches per optimizer step",
        "save_every": "optimizer steps between checkpoints",
        "valid_catalog": "catalog for validation-based model selection", "valid_ids": "its ID folder",
        "log_samples": "write the keys of the samples each rank trained on (samples_rank<R>_epoch<E>.txt)",
        "engine": "deepspeed (any number of processes, ZeRO) or torch (one process, no DeepSpeed)",
        "length_group_window": "micro-batches whose samples are sorted by length together (0: off)",
        "time_budget_s": "one process only: end training (as if at an epoch end) after this many seconds (0: none)",
        "max_steps": "end training (as if at an epoch end) after this many optimizer steps (0: none)",
        "warmup_ratio": ("warmup as a fraction of the run (> 0 overrides warmup_steps); with a time budget, of "
                         "the budget"),
        "label_smoothing": "label smoothing of the target-token cross-entropy",
        "dropout": "dropout rate of the model (default: the checkpoint's or the size's)",
        "decay_norms": "apply weight decay to layer norms and biases too (default: only to weight matrices)",
        "redraw_templates": "draw every recommendation sample's prompt template again each epoch",
        "history_crop": "each epoch, cut this share of the recommendation samples' histories to a random number of "
                        "their most recent items (1 to all; 0: off): teaches item-to-item transitions",
        "eval_length_penalty": "beam score = log p / length ** this, in validation and test decoding",
        "eval_repeat_bias_grid": "after training, the best epoch's validation tries repeat-aware ranking (the "
                                 "user's history items at the model's score + a bias; recommender/repeats.py) with "
                                 "each of these biases and off; test takes the winner (empty: off)",
        "select_with_repeats": ("choose the repeat bias at every validated epoch too, so that epoch selection and "
                                "the plateau follow the ranking test will use (NDCG@10 at the epoch's best bias); "
                                "off: they follow the beams alone and only the best epoch's bias is chosen"),
        "valid_max_users": "select epochs on the first N validation users (0: all)",
        "test_max_users": "test the selected model on the first N test users only (0: all), for smoke runs; the "
                          "summary records the test as partial",
        "valid_from": "validate only epochs that end after this fraction of the run (of the time budget, or of "
                      "the epochs; the last epoch always is): when the best epochs are the last ones, this saves "
                      "validations that cost a fifth of an epoch each on CPU",
        "anneal_patience": "0: the learning rate decays linearly over the whole run (epochs or time budget). N: it "
                           "stays at lr after warmup until validation NDCG@10 has not improved for N validated "
                           "epochs, or until what is left of the run is one anneal long; then it anneals linearly to "
                           "0 over anneal_epochs and training ends (a started anneal runs to its end, past a time "
                           "budget by at most the validations within it)",
        "anneal_epochs": "length of that anneal, in epochs (fractions allowed)",
        "anneal_from_best": "rewind to the best validated epoch (weights and optimizer state) before annealing"}


def warmup_of(cfg: TrainConfig, total_steps: int) -> int:
    """Warmup optimizer steps: a fraction of the run when ``warmup_ratio`` is set, else ``warmup_steps``."""
    return round(cfg.warmup_ratio * total_steps) if cfg.warmup_ratio > 0 else min(cfg.warmup_steps, total_steps)


def param_groups(model, weight_decay: float, decay_norms: bool) -> list[dict]:
    """Weight decay on weight matrices only (layer norms and biases, the 1-D parameters, are left alone, as in
    common practice), unless ``decay_norms``."""
    decay, keep = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if decay_norms or p.ndim >= 2 else keep).append(p)
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0})
            if g["params"]]


def seq2seq_loss(output, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """The model's own cross-entropy, or a label-smoothed one over the same target tokens."""
    if not label_smoothing:
        return output.loss
    logits = output.logits.float()
    return torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100,
                                             label_smoothing=label_smoothing)


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


def _start_engine(cfg: TrainConfig, model, total_steps: int):
    """(engine, rank, world): DeepSpeed (initializing the process group) or the one-process TorchEngine."""
    groups = param_groups(model, cfg.weight_decay, cfg.decay_norms)
    if cfg.engine == "torch":
        from pretrain.engine import TorchEngine

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("engine torch runs in one process; use engine deepspeed under a launcher")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        start = time.time()
        budget = (lambda: (time.time() - start) / cfg.time_budget_s) if cfg.time_budget_s else None
        return TorchEngine(model, groups, device, cfg.lr, warmup_of(cfg, total_steps), total_steps, cfg.clip,
                           cfg.grad_accum, cfg.bf16, budget, plateau=cfg.anneal_patience > 0), 0, 1
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


def _init_processes(cfg: TrainConfig) -> int:
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


_STORE_SOCKET: list = []


def _is_loopback(addr: str) -> bool:
    import ipaddress

    try:
        return addr == "localhost" or ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


def initial_model(cfg: TrainConfig):
    """(model, tokenizer) to start from: the ``init`` checkpoint (its own tokenizer; a ``tokenizer`` or
    ``model_size`` also given must agree with it) or a fresh, seeded model of ``model_size`` (tiny by default)."""
    from catalog.tokenizer import load_tokenizer, require_same_tokenizer
    from seq2seq.model import build_model, check_size, load_model_and_tokenizer, model_config

    if cfg.init is None:
        tok = load_tokenizer(cfg.tokenizer)
        mcfg = model_config(cfg.model_size or "tiny")
        mcfg.seed = cfg.seed
        return _for_training(build_model(mcfg, tok), cfg), tok
    model, tok = load_model_and_tokenizer(cfg.init)
    if cfg.tokenizer is not None:
        require_same_tokenizer(tok, f"init {cfg.init}", load_tokenizer(cfg.tokenizer), f"tokenizer {cfg.tokenizer}")
    if cfg.model_size is not None:
        check_size(model, cfg.model_size, f"init {cfg.init}")
    return _for_training(model, cfg), tok


def _for_training(model, cfg: TrainConfig):
    """Training mode (a loaded checkpoint comes in eval mode, in which its dropout would silently be off) with the
    config's dropout."""
    from seq2seq.model import set_dropout

    if cfg.dropout is not None:
        set_dropout(model, cfg.dropout)
    return model.train()


def check_lineage(cfg: TrainConfig) -> None:
    """Validation must use the IDs the shards were built from (a model is never selected on IDs it did not learn),
    and the shards' prompts the history order evaluation writes."""
    from catalog.id_table import ids_hash
    from pretrain.shards import check_prompt_format, read_manifest

    check_prompt_format(cfg.shards)
    if cfg.valid_ids is None:
        return
    built = {t["ids_hash"]: t["ids"] for t in read_manifest(cfg.shards).get("id_tables", [])}
    if not built:
        log.warning("%s: the manifest does not record its ID tables (older shards): lineage not checked", cfg.shards)
        return
    mine = ids_hash(cfg.valid_ids)
    if mine not in built:
        raise ValueError(f"valid_ids {cfg.valid_ids} (IDs {mine}) are not the IDs the shards {cfg.shards} were built "
                         f"from ({', '.join(f'{p} = {h}' for h, p in built.items())}): the model would be selected on "
                         "IDs it never learned")


def check_resume_inputs(cfg: TrainConfig, ckpt: Path, rank: int) -> None:
    """Checkpoints resume only a run of the same shards and starting model (content fingerprints, not paths):
    a rebuilt shard folder or a retrained init in place stops here with the inputs named."""
    from infra.fingerprint import changed_inputs, content_digest, write_stamp

    inputs = {"shards": content_digest(cfg.shards), "init": content_digest(cfg.init or cfg.tokenizer)}
    if (ckpt / "latest").exists():
        changed = changed_inputs(ckpt, inputs)
        if changed:
            raise ValueError(f"{ckpt}: checkpoints of a run with other inputs (changed: {', '.join(changed)}); "
                             "use another --out, or remove it to start over")
    elif rank == 0:
        write_stamp(ckpt, inputs)


def _share_from_rank0(obj):
    import torch.distributed as dist

    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def train(cfg: TrainConfig) -> dict:
    from catalog.heldout import domains_seen
    from catalog.tokenizer import tokenizer_fingerprint
    from eval.runs import TrainingRun
    from infra.progress import progress
    from pretrain.data import empty_batch, micro_steps_per_epoch, tokenized_batches
    from pretrain.shards import read_manifest
    from recommender.prompts import TEMPLATES

    if cfg.shards is None or cfg.out is None or (cfg.tokenizer is None and cfg.init is None):
        raise ValueError("train needs shards, out and tokenizer (or init)")
    if cfg.time_budget_s and cfg.engine != "torch":
        raise ValueError("time_budget_s needs engine torch (ranks would have to agree on when to stop)")
    world = _init_processes(cfg)
    out = Path(cfg.out)
    run = TrainingRun(out)
    model, tok = initial_model(cfg)
    check_lineage(cfg)
    fingerprint = tokenizer_fingerprint(tok)
    manifest = read_manifest(cfg.shards)
    domains = domains_seen(cfg.init or cfg.tokenizer) | set(manifest["per_domain"])
    micro_per_epoch = micro_steps_per_epoch(cfg.shards, world, cfg.micro_batch, cfg.grad_accum)
    templates = manifest.get("templates", len(TEMPLATES))  # a redraw keeps to the shards' set
    total_steps = micro_per_epoch * cfg.epochs // cfg.grad_accum
    engine, rank, world = _start_engine(cfg, model, total_steps)
    device = engine.device
    ckpt = run.checkpoints
    state = {"epoch": 0, "micro_step": 0, "best": None, "history": [], "stopped_early": None, "train_s": 0.0,
             "stale": 0}
    anneal_steps = max(1, round(cfg.anneal_epochs * micro_per_epoch / cfg.grad_accum))
    check_resume_inputs(cfg, ckpt, rank)
    if (ckpt / "latest").exists():
        _, client = engine.load_checkpoint(str(ckpt))
        state.update((client or {}).get("idgenrec", {}))
        saved = state.pop("tokenizer_fingerprint", None)
        if saved not in (None, fingerprint):
            raise ValueError(f"{ckpt}: checkpoints of a model with tokenizer {saved}, but this run's tokenizer is "
                             f"{fingerprint}: use another --out or the same tokenizer")
        if rank == 0:
            log.info("resumed from %s at epoch %d, micro-step %d", (ckpt / "latest").read_text().strip(),
                     state["epoch"], state["micro_step"])

    def save_checkpoint(tag: str) -> None:
        engine.save_checkpoint(str(ckpt), tag=tag,
                               client_state={"idgenrec": {**state, "tokenizer_fingerprint": fingerprint}})

    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    empty = empty_batch(tok, cfg.max_source_tokens, cfg.max_target_tokens)
    while state["epoch"] < cfg.epochs and not state["stopped_early"]:
        epoch = state["epoch"]
        batches = tokenized_batches(cfg.shards, cfg.micro_batch, tok, cfg.max_source_tokens, cfg.max_target_tokens,
                                    cfg.length_group_window, cfg.seed + epoch, cfg.loader_workers,
                                    redraw_of(cfg, epoch, templates))
        for _ in range(state["micro_step"]):  # already done before the checkpoint we resumed from
            next(batches, None)
        bar = progress(total=micro_per_epoch, initial=state["micro_step"], desc=f"epoch {epoch}", unit="step",
                       disable=rank != 0)
        t0, seen, losses = time.time(), 0, []
        while state["micro_step"] < micro_per_epoch:
            batch = next(batches, None)
            real = batch is not None
            if not real:  # this rank is out of samples: an empty batch keeps the collectives in step
                batch = empty
            inputs = {k: v.to(device, non_blocking=True) for k, v in batch.tensors.items()}
            torch.manual_seed(cfg.seed + 1_000_003 * epoch + 7919 * state["micro_step"] + rank)  # dropout
            # under bf16 DeepSpeed holds the model in bf16 itself
            loss = seq2seq_loss(engine(**inputs), inputs["labels"], cfg.label_smoothing)
            engine.backward(loss * (1.0 if real else 0.0))
            engine.step()
            state["micro_step"] += 1
            if real:
                seen += len(batch.keys)
                losses.append(loss.detach())  # no device sync per step: read at log time
                if cfg.log_samples:
                    with open(out / f"samples_rank{rank}_epoch{epoch}.txt", "a") as fh:
                        fh.write("".join(k + "\n" for k in batch.keys))
            bar.update(1)
            step = engine.global_steps
            if state["micro_step"] % cfg.grad_accum == 0:  # an optimizer step just happened
                if rank == 0 and step % cfg.log_every == 0 and losses:
                    recent = losses[-cfg.log_every:]
                    elapsed = time.time() - t0
                    rec = {"epoch": epoch, "step": step, "loss": torch.stack(recent).float().mean().item(),
                           "lr": engine.get_lr()[0], "samples_per_s": seen * world / max(elapsed, 1e-9),
                           "samples": seen * world, "elapsed_s": elapsed}
                    run.log(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.3f}", refresh=False)
                if step % cfg.save_every == 0 and state["micro_step"] < micro_per_epoch:
                    save_checkpoint(f"step{step:08d}")
                if cfg.anneal_patience:
                    _anneal_at_the_end(engine, cfg, state, total_steps, anneal_steps, time.time() - t_start,
                                       (state["train_s"] + time.time() - t0) / max(step, 1))
                state["stopped_early"] = _stop_reason(cfg, engine, time.time() - t_start)
                if state["stopped_early"]:
                    log.info("%s reached in epoch %d at micro-step %d: training ends here", state["stopped_early"],
                             epoch, state["micro_step"])
                    break
        bar.close()
        state["train_s"] += time.time() - t0
        export = run.export(epoch)
        export_hf(engine, tok, export, rank, {"domains_seen": sorted(domains),
                                              "max_history": manifest.get("max_history", 20)})
        state["epoch"], state["micro_step"] = epoch + 1, 0
        if rank == 0:
            train_loss = torch.stack(losses).float().mean().item() if losses else 0.0
            record = {"epoch": epoch, "export": str(export), "train_loss": train_loss,
                      "samples_per_s": seen * world / max(time.time() - t0, 1e-9)}
            if cfg.valid_catalog is None:
                _replace(export, run.best)
                state["best"] = {"epoch": epoch}
            elif not _validates(cfg, epoch, time.time() - t_start, state):
                log.info("epoch %d: not validated (before valid_from %g of the run)", epoch, cfg.valid_from)
            else:
                record["valid"] = _evaluate(export, cfg, "valid", **_selection_repeats(cfg))
                key = record["valid"]["NDCG@10"]
                if state["best"] is None or key > state["best"]["NDCG@10"]:
                    state["best"] = {"epoch": epoch, "NDCG@10": key}
                    _replace(export, run.best)
                if cfg.anneal_patience:
                    _plateau(cfg, state, epoch, engine.lr_scheduler)
            state["history"].append(record)
            log.info("epoch %d done: %s", epoch, json.dumps(record))
        state = _share_from_rank0(state)
        if state.get("anneal_from") is not None:  # every rank: the plateau rank 0 found
            _anneal_from(engine, state.pop("anneal_from"), epoch, ckpt, anneal_steps)
        save_checkpoint(f"epoch{epoch:03d}")
    last = state["history"][-1]["epoch"] if state["history"] else cfg.epochs - 1
    summary = {"epochs": cfg.epochs, "world_size": world, "zero_stage": cfg.zero_stage, "engine": cfg.engine,
               "best": state["best"], "history": state["history"], "final": str(run.export(last)),
               "stopped_early": state["stopped_early"]}
    if rank == 0:
        if cfg.valid_catalog is not None and run.best.exists():
            chosen = next((h.get("valid") for h in state["history"] if h["epoch"] == state["best"]["epoch"]), None)
            summary |= final_test(cfg, run.best, chosen)
        run.write_summary(summary)
    _barrier()
    return summary


def _stop_reason(cfg: TrainConfig, engine, elapsed_s: float) -> str | None:
    """Why training ends after this optimizer step (None: it goes on). A started anneal always runs to its end (it
    was started to end with the budget; validations within it can make it overrun by their time)."""
    annealed = engine.lr_scheduler.annealed() if cfg.anneal_patience else None
    if annealed is not None and annealed >= 1.0:
        return f"anneal of {engine.lr_scheduler.anneal[1]} steps done"
    if cfg.time_budget_s and elapsed_s > cfg.time_budget_s and annealed is None:
        return f"time budget of {cfg.time_budget_s:g} s"
    if cfg.max_steps and engine.global_steps >= cfg.max_steps:
        return f"max_steps {cfg.max_steps}"
    return None


def _anneal_at_the_end(engine, cfg: TrainConfig, state: dict, total_steps: int, anneal_steps: int,
                       elapsed_s: float, step_s: float) -> None:
    """Start the anneal when what is left of the run (optimizer steps, or the time budget at the measured seconds
    per step) is one anneal long, so that it ends with the run."""
    if engine.lr_scheduler.anneal is not None or state["stopped_early"]:
        return
    left_steps = total_steps - engine.global_steps
    if cfg.time_budget_s:
        left_steps = min(left_steps, (cfg.time_budget_s - elapsed_s) / max(step_s, 1e-9))
    if left_steps <= anneal_steps:
        engine.lr_scheduler.start_anneal(anneal_steps)
        log.info("annealing over the last %d steps of the run (step %d)", anneal_steps, engine.global_steps)


def _plateau(cfg: TrainConfig, state: dict, epoch: int, schedule) -> None:
    """Rank 0, after a validated epoch: count the validations without a new best; at ``anneal_patience`` of them
    ask every rank to anneal (``state["anneal_from"]``: the epoch whose weights it starts from)."""
    if schedule.anneal is not None or state["stopped_early"]:
        return
    state["stale"] = 0 if state["best"]["epoch"] == epoch else state["stale"] + 1
    if state["stale"] >= cfg.anneal_patience:
        state["anneal_from"] = state["best"]["epoch"] if cfg.anneal_from_best else epoch
        log.info("validation has not improved for %d epoch(s) (best: epoch %d)", state["stale"], state["best"]["epoch"])


def _anneal_from(engine, start: int, epoch: int, ckpt: Path, anneal_steps: int) -> None:
    """Start the anneal from epoch ``start``'s weights and optimizer state: a rewind to its checkpoint unless it is
    ``epoch``, the one just trained."""
    if start != epoch:
        engine.load_checkpoint(str(ckpt), f"epoch{start:03d}")
    engine.lr_scheduler.start_anneal(anneal_steps)
    log.info("annealing over %d steps from epoch %d's weights", anneal_steps, start)


def redraw_of(cfg: TrainConfig, epoch: int, templates: int) -> Redraw | None:
    """How ``epoch`` renders the prompts again (None: as the shards wrote them)."""
    from pretrain.data import Redraw

    if not cfg.redraw_templates and not cfg.history_crop:
        return None
    return Redraw(cfg.seed, epoch, templates if cfg.redraw_templates else 0, cfg.history_crop)


def run_fraction(cfg: TrainConfig, epochs_done: int, elapsed_s: float) -> float:
    """How much of the run is over: the larger of the epochs' and the time budget's fractions."""
    done = epochs_done / cfg.epochs
    return max(done, elapsed_s / cfg.time_budget_s) if cfg.time_budget_s else done


def _validates(cfg: TrainConfig, epoch: int, elapsed_s: float, state: dict) -> bool:
    last = epoch + 1 >= cfg.epochs or bool(state["stopped_early"])
    return last or run_fraction(cfg, epoch + 1, elapsed_s) >= cfg.valid_from


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def _replace(src: Path, dst: Path) -> None:
    """Copy an export folder over ``dst`` atomically."""
    from infra.atomic import atomic_dir

    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)


def _selection_repeats(cfg: TrainConfig) -> dict:
    """What each epoch's validation passes to the evaluation: the repeat-bias grid with ``select_with_repeats``."""
    if cfg.select_with_repeats and cfg.eval_repeat_bias_grid:
        return {"repeat_bias_grid": cfg.eval_repeat_bias_grid}
    return {}


def final_test(cfg: TrainConfig, best: Path, valid: dict | None = None) -> dict:
    """The summary's test of the selected model: first, with ``eval_repeat_bias_grid``, the repeat bias chosen on
    validation (``repeat_bias``: the choice, None for off, and each candidate's validation NDCG@10); ``valid``: the
    selected epoch's validation, reused when it chose the bias already (``select_with_repeats``)."""
    out, bias = {}, None
    if cfg.eval_repeat_bias_grid:
        if valid is None or "repeat_bias_ndcg10" not in valid:
            valid = _evaluate(best, cfg, "valid", repeat_bias_grid=cfg.eval_repeat_bias_grid)
        bias = valid["repeat_bias"]
        out["repeat_bias"] = {"chosen": bias, "valid_ndcg10": valid["repeat_bias_ndcg10"], "valid": valid}
        log.info("repeat bias chosen on validation: %s (NDCG@10 of each: %s)", bias, valid["repeat_bias_ndcg10"])
    out["test_at_best"] = _evaluate(best, cfg, "test", repeat_bias=bias)
    return out


def _evaluate(model_dir: Path, cfg: TrainConfig, split: str, **repeats) -> dict:
    """Validation (or test) of an export, with prompts made the way the shards made them."""
    from eval.evaluate import EvalConfig, evaluate
    from pretrain.shards import read_manifest

    manifest = read_manifest(cfg.shards)
    m = evaluate(EvalConfig(model=model_dir, catalog=cfg.valid_catalog, ids=cfg.valid_ids, out=model_dir / "eval",
                            split=split, beams=cfg.eval_beams, batch_size=cfg.eval_batch_size,
                            length_penalty=cfg.eval_length_penalty,
                            max_users=cfg.valid_max_users if split == "valid" else cfg.test_max_users,
                            user_ids=manifest.get("user_ids", False), max_history=manifest.get("max_history", 20),
                            device="auto", **repeats))
    keep = ("users", "partial", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "coverage@10", "repeat_bias",
            "repeat_bias_ndcg10")
    return {k: m[k] for k in keep if k in m}


def main(argv: list[str] | None = None) -> int:
    from infra.config import add_config_args, config_from_args
    from infra.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m pretrain.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(parser, TrainConfig, HELP)
    parser.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)  # passed by the launcher
    args = parser.parse_args(argv)
    setup_logging()
    summary = train(config_from_args(TrainConfig, args))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: summary[k] for k in ("best", "world_size", "zero_stage")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
