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
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from catalog.split import LEGACY_MAX_HISTORY
from infra.atomic import write_text
from pretrain.config import HELP, TrainConfig
from pretrain.distributed import barrier, export_hf, init_processes, share_from_rank0, start_engine
from pretrain.selection import check_lineage, evaluate_export, final_test, keep_best, selection_repeats, validates
from seq2seq.model import seq2seq_loss
from seq2seq.schedule import PlateauControl, shortfall_in_se

log = logging.getLogger("idgenrec.train")


@dataclass
class RunState:
    """What a checkpoint carries besides weights and optimizer: where the run is, what validation found so far
    (``best``, ``history``), why it stopped, and the plateau controller's count of validations without a new best."""

    epoch: int = 0
    micro_step: int = 0
    best: dict | None = None
    history: list = field(default_factory=list)
    stopped_early: str | None = None
    stale: int = 0
    anneal_from: int | None = None  # set by rank 0 at a plateau: every rank anneals from this epoch's weights

    @classmethod
    def from_checkpoint(cls, client: dict) -> "RunState":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in client.items() if k in known})


@dataclass
class Job:
    """A started training run: its config, engine, tokenizer, folder and the sizes its loop counts with."""

    cfg: TrainConfig
    run: Any  # eval.runs.TrainingRun
    engine: Any
    tok: Any
    rank: int
    world: int
    micro_per_epoch: int
    total_steps: int
    templates: int
    export_meta: dict
    fingerprint: str
    control: PlateauControl | None
    successors: dict | None = None  # pretrain.data.successor_table of the shards, when successor_targets is on
    t_start: float = field(default_factory=time.time)

    def save(self, state: RunState, tag: str) -> None:
        """Every rank's part of a checkpoint, then (after a barrier) ``latest`` naming it: DeepSpeed's rank 0 wrote
        ``latest`` while other ranks could still be writing their optimizer partitions."""
        client = {"idgenrec": {**asdict(state), "tokenizer_fingerprint": self.fingerprint}}
        if self.cfg.engine == "torch":  # one process: the engine writes latest after its files
            self.engine.save_checkpoint(str(self.run.checkpoints), tag=tag, client_state=client)
            return
        self.engine.save_checkpoint(str(self.run.checkpoints), tag=tag, client_state=client, save_latest=False)
        barrier()
        if self.rank == 0:
            write_text(self.run.checkpoints / "latest", tag)
        barrier()


def initial_model(cfg: TrainConfig):
    """(model, tokenizer) to start from: the ``init`` checkpoint (its own tokenizer; a ``tokenizer`` or
    ``model_size`` also given must agree with it) or a fresh, seeded model of ``model_size`` (tiny by default)."""
    from seq2seq.model import start_model

    return start_model(cfg.init, cfg.tokenizer, cfg.model_size, "tiny", cfg.seed, cfg.dropout)


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


def start(cfg: TrainConfig) -> Job:
    """Processes, model, lineage checks and engine: everything the loop needs."""
    from catalog.heldout import domains_seen
    from catalog.tokenizer import tokenizer_fingerprint
    from eval.runs import TrainingRun
    from pretrain.data import micro_steps_per_epoch, successor_table
    from pretrain.shards import all_samples, read_manifest
    from recommender.prompts import TEMPLATES

    if cfg.shards is None or cfg.out is None or (cfg.tokenizer is None and cfg.init is None):
        raise ValueError("train needs shards, out and tokenizer (or init)")
    if cfg.time_budget_s and cfg.engine != "torch":
        raise ValueError("time_budget_s needs engine torch (ranks would have to agree on when to stop)")
    world = init_processes(cfg)
    model, tok = initial_model(cfg)
    check_lineage(cfg)
    manifest = read_manifest(cfg.shards)
    micro_per_epoch = micro_steps_per_epoch(cfg.shards, world, cfg.micro_batch, cfg.grad_accum)
    total_steps = micro_per_epoch * cfg.epochs // cfg.grad_accum
    engine, rank, world = start_engine(cfg, model, total_steps)
    anneal_steps = round(cfg.anneal_epochs * micro_per_epoch / cfg.grad_accum)
    meta = {"domains_seen": sorted(domains_seen(cfg.init or cfg.tokenizer) | set(manifest["per_domain"])),
            "max_history": manifest.get("max_history", LEGACY_MAX_HISTORY)}
    control = PlateauControl(cfg.anneal_patience, anneal_steps, cfg.anneal_margin_se, cfg.anneal_min_epochs)
    successors = successor_table(all_samples(cfg.shards)) if cfg.successor_targets else None
    return Job(cfg, TrainingRun(cfg.out), engine, tok, rank, world, micro_per_epoch, total_steps,
               manifest.get("templates", len(TEMPLATES)), meta, tokenizer_fingerprint(tok),  # a redraw keeps
               control if cfg.anneal_patience else None, successors)  # to their set


def resume(job: Job) -> RunState:
    """The state of the latest checkpoint (a fresh one without), checked to be of this run's inputs."""
    ckpt = job.run.checkpoints
    check_resume_inputs(job.cfg, ckpt, job.rank)
    if not (ckpt / "latest").exists():
        return RunState()
    _, client = job.engine.load_checkpoint(str(ckpt))
    client = dict((client or {}).get("idgenrec", {}))
    saved = client.pop("tokenizer_fingerprint", None)
    if saved not in (None, job.fingerprint):
        raise ValueError(f"{ckpt}: checkpoints of a model with tokenizer {saved}, but this run's tokenizer is "
                         f"{job.fingerprint}: use another --out or the same tokenizer")
    state = RunState.from_checkpoint(client)
    if job.rank == 0:
        log.info("resumed from %s at epoch %d, micro-step %d", (ckpt / "latest").read_text().strip(), state.epoch,
                 state.micro_step)
    return state


def train(cfg: TrainConfig) -> dict:
    """Train (resuming from the latest checkpoint), export and validate each epoch, test the best: the summary."""
    job = start(cfg)
    state = resume(job)
    job.run.path.mkdir(parents=True, exist_ok=True)
    while state.epoch < cfg.epochs and not state.stopped_early:
        seen, losses, t0 = train_epoch(job, state)
        state = end_epoch(job, state, seen, losses, t0)
    return finish(job, state)


def train_epoch(job: Job, state: RunState) -> tuple[int, list, float]:
    """The rest of epoch ``state.epoch``, micro-step by micro-step; (samples seen here, losses, start time)."""
    from infra.progress import progress
    from pretrain.data import Redraw, empty_batch, tokenized_batches

    cfg, epoch = job.cfg, state.epoch
    # before the loader's thread starts: a tokenizer call sets the tokenizer's truncation and padding, so one made
    # beside that thread could cut a batch it was tokenizing (a resumed run then diverged, now and then)
    empty = empty_batch(job.tok, cfg.max_source_tokens, cfg.max_target_tokens)
    batches = tokenized_batches(cfg.shards, cfg.micro_batch, job.tok, cfg.max_source_tokens, cfg.max_target_tokens,
                                cfg.length_group_window, cfg.seed + epoch, cfg.loader_workers,
                                Redraw.of(cfg.seed, epoch, job.templates if cfg.redraw_templates else 0,
                                          cfg.history_crop, cfg.successor_targets, job.successors))
    for _ in range(state.micro_step):  # already done before the checkpoint we resumed from
        next(batches, None)
    bar = progress(total=job.micro_per_epoch, initial=state.micro_step, desc=f"epoch {epoch}", unit="step",
                   disable=job.rank != 0)
    t0, seen, losses = time.time(), 0, []
    while state.micro_step < job.micro_per_epoch:
        batch = next(batches, None)
        loss = micro_step(job, state, batch if batch is not None else empty, real=batch is not None)
        if batch is not None:
            seen += len(batch.keys)
            losses.append(loss.detach())  # no device sync per step: read at log time
            if cfg.log_samples:
                with open(job.run.path / f"samples_rank{job.rank}_epoch{epoch}.txt", "a") as fh:
                    fh.write("".join(k + "\n" for k in batch.keys))
        bar.update(1)
        if state.micro_step % cfg.grad_accum == 0 and after_optimizer_step(job, state, seen, losses, t0, bar):
            break
    bar.close()
    batches.close()  # its tokenizer thread ends now, not at interpreter exit
    return seen, losses, t0


def micro_step(job: Job, state: RunState, batch, real: bool) -> torch.Tensor:
    """Forward and backward of one micro-batch (an empty one, weighted 0, when this rank is out of samples: it keeps
    the collectives in step); the engine steps the optimizer every ``grad_accum`` of them."""
    inputs = {k: v.to(job.engine.device, non_blocking=True) for k, v in batch.tensors.items()}
    torch.manual_seed(job.cfg.seed + 1_000_003 * state.epoch + 7919 * state.micro_step + job.rank)  # dropout
    # under bf16 DeepSpeed holds the model in bf16 itself
    loss = seq2seq_loss(job.engine(**inputs), inputs["labels"], job.cfg.label_smoothing)
    job.engine.backward(loss * (1.0 if real else 0.0))
    job.engine.step()
    state.micro_step += 1
    return loss


def after_optimizer_step(job: Job, state: RunState, seen: int, losses: list, t0: float, bar) -> bool:
    """Log, checkpoint, start the anneal when the run's end is one anneal away; whether training ends here."""
    cfg, engine, step = job.cfg, job.engine, job.engine.global_steps
    if job.rank == 0 and step % cfg.log_every == 0 and losses:
        elapsed = time.time() - t0
        rec = {"epoch": state.epoch, "step": step, "loss": torch.stack(losses[-cfg.log_every:]).float().mean().item(),
               "lr": engine.get_lr()[0], "samples_per_s": seen * job.world / max(elapsed, 1e-9),
               "samples": seen * job.world, "elapsed_s": elapsed}
        job.run.log(rec)
        bar.set_postfix(loss=f"{rec['loss']:.3f}", refresh=False)
    if step % cfg.save_every == 0 and state.micro_step < job.micro_per_epoch:
        job.save(state, f"step{step:08d}")
    if job.control and engine.lr_scheduler.anneal is None and not state.stopped_early and \
            job.control.left_is_one_anneal(step, job.total_steps):
        engine.lr_scheduler.start_anneal(job.control.anneal_steps)
        log.info("annealing over the last %d steps of the run (step %d)", job.control.anneal_steps, step)
    state.stopped_early = stop_reason(cfg, engine, time.time() - job.t_start)
    if state.stopped_early:
        log.info("%s reached in epoch %d at micro-step %d: training ends here", state.stopped_early, state.epoch,
                 state.micro_step)
    return bool(state.stopped_early)


def end_epoch(job: Job, state: RunState, seen: int, losses: list, t0: float) -> RunState:
    """Export the epoch; rank 0 validates it, keeps the best and watches for a plateau; every rank takes rank 0's
    state, anneals when asked, and checkpoints."""
    epoch = state.epoch
    export = job.run.export(epoch)
    export_hf(job.engine, job.tok, export, job.rank, job.export_meta)
    state.epoch, state.micro_step = epoch + 1, 0
    if job.rank == 0:
        record = {"epoch": epoch, "export": str(export),
                  "train_loss": torch.stack(losses).float().mean().item() if losses else 0.0,
                  "samples_per_s": seen * job.world / max(time.time() - t0, 1e-9)}
        validate_epoch(job, state, epoch, export, record)
        state.history.append(record)
        log.info("epoch %d done: %s", epoch, json.dumps(record))
    state = share_from_rank0(state)
    if state.anneal_from is not None:  # every rank: the plateau rank 0 found
        anneal_from(job, state.anneal_from, epoch)
        state.anneal_from = None
    job.save(state, f"epoch{epoch:03d}")
    return state


def validate_epoch(job: Job, state: RunState, epoch: int, export: Path, record: dict) -> None:
    """Rank 0: the epoch's validation (when due), the best epoch kept in ``best/``, and the plateau count."""
    cfg = job.cfg
    if cfg.valid_catalog is None:
        keep_best(export, job.run.best)
        state.best = {"epoch": epoch}
        return
    if not validates(cfg, epoch, bool(state.stopped_early)):
        log.info("epoch %d: not validated (before valid_from %g of the run)", epoch, cfg.valid_from)
        return
    record["valid"] = evaluate_export(export, cfg, "valid", **selection_repeats(cfg))
    key = record["valid"]["NDCG@10"]
    improved = state.best is None or key > state.best["NDCG@10"]
    if improved:
        state.best = {"epoch": epoch, "NDCG@10": key}
        keep_best(export, job.run.best)
    if job.control and job.engine.lr_scheduler.anneal is None and not state.stopped_early:
        shortfall = shortfall_in_se(state.best["NDCG@10"], key, record["valid"].get("se", {}).get("NDCG@10"))
        state.stale, plateau = job.control.after_validation(state.stale, state.best["epoch"] == epoch, shortfall,
                                                            epoch + 1)
        if plateau:
            state.anneal_from = state.best["epoch"] if cfg.anneal_from_best else epoch
            log.info("validation has not improved for %d epoch(s) (best: epoch %d)", state.stale,
                     state.best["epoch"])


def anneal_from(job: Job, start: int, epoch: int) -> None:
    """Start the anneal from epoch ``start``'s weights and optimizer state: a rewind to its checkpoint unless it is
    ``epoch``, the one just trained."""
    if start != epoch:
        job.engine.load_checkpoint(str(job.run.checkpoints), f"epoch{start:03d}")
    job.engine.lr_scheduler.start_anneal(job.control.anneal_steps)
    log.info("annealing over %d steps from epoch %d's weights", job.control.anneal_steps, start)


def stop_reason(cfg: TrainConfig, engine, elapsed_s: float) -> str | None:
    """Why training ends after this optimizer step (None: it goes on). The time limit stops the run where it is
    (the schedule never follows the clock, so a run that stops there is a shorter run, not a reshaped one)."""
    annealed = engine.lr_scheduler.annealed() if cfg.anneal_patience else None
    if annealed is not None and annealed >= 1.0:
        return f"anneal of {engine.lr_scheduler.anneal[1]} steps done"
    if cfg.time_budget_s and elapsed_s > cfg.time_budget_s:
        return f"time budget of {cfg.time_budget_s:g} s"
    if cfg.max_steps and engine.global_steps >= cfg.max_steps:
        return f"max_steps {cfg.max_steps}"
    return None


def finish(job: Job, state: RunState) -> dict:
    """The summary: epochs, best, history, why it stopped; rank 0 tests the selected model and writes it."""
    cfg, run = job.cfg, job.run
    last = state.history[-1]["epoch"] if state.history else cfg.epochs - 1
    summary = {"epochs": cfg.epochs, "world_size": job.world, "zero_stage": cfg.zero_stage, "engine": cfg.engine,
               "best": state.best, "history": state.history, "final": str(run.export(last)),
               "stopped_early": state.stopped_early}
    if job.rank == 0:
        if cfg.valid_catalog is not None and run.best.exists():
            summary |= final_test(cfg, run.best, run.selected_valid(summary))
        run.write_summary(summary)
    barrier()
    return summary


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
