"""``idgenrec alternate``: the paper's alternate training, as rounds of three steps:

1. generator phase (from round 1 on): the ID generator learns through the frozen recommender (pretrain.id_phase);
2. IDs regenerated for every item with Algorithm 1 (the Ray job, cluster.idjob);
3. recommender phase: fresh shards, then the DeepSpeed trainer under the ``deepspeed`` launcher, starting from the
   previous round's best recommender, with validation-based selection.

Every step writes its own folder under ``out/round<R>/`` and is skipped when that folder is complete, so a rerun
continues where it stopped (the ID job and the trainer also resume within a step). Ablations by ``mode``:
``alternate`` (both learn), ``recommender_only`` (IDs stay those of the warm-started generator),
``generator_only`` (after round 0 only the generator learns).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from catalog.atomic import write_json
from cluster.idjob import IDJobConfig, run_ids
from pretrain.id_phase import train_generator
from pretrain.launch import launch_train
from pretrain.shards import ShardsConfig, write_shards

log = logging.getLogger("idgenrec.alternate")
MODES = ("alternate", "recommender_only", "generator_only")


@dataclass
class AlternateConfig:
    catalog: Path | None = None
    generator: Path | None = None
    out: Path | None = None
    train_config: Path | None = None
    mode: str = "alternate"
    rounds: int = 3
    user_ids: bool = False
    actors: int = 2
    procs: int = 2
    generator_steps: int = 100
    generator_lr: float = 1e-4
    generator_batch_size: int = 16
    samples_per_shard: int = 2000
    groups: int = 10
    seed: int = 0

    def check(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if self.rounds < 1:
            raise ValueError("rounds must be >= 1")


HELP = {"catalog": "catalog directory", "generator": "warm-started ID generator directory (model + tokenizer)",
        "out": "run folder", "train_config": "YAML of the recommender phase (pretrain.train fields)",
        "mode": f"one of {MODES}", "procs": "deepspeed processes for the recommender phase",
        "generator_lr": "generator-phase learning rate (the paper used 1e-8 with a pretrained T5)"}


def _train_recommender(cfg: AlternateConfig, shards: Path, ids: Path, init: Path | None, out: Path) -> Path:
    if (out / "summary.json").exists():
        return out / "best"
    args = ["--shards", shards, "--out", out, "--valid-catalog", cfg.catalog, "--valid-ids", ids]
    args += ["--init", init] if init else ["--tokenizer", cfg.generator]
    if cfg.train_config:
        args += ["--config", cfg.train_config]
    launch_train(cfg.procs, args, check=True)
    return out / "best"


def run_alternate(cfg: AlternateConfig) -> dict:
    if None in (cfg.catalog, cfg.generator, cfg.out):
        raise ValueError("alternate needs catalog, generator and out")
    out = Path(cfg.out)
    gen, rec, history = Path(cfg.generator), None, []
    for r in range(cfg.rounds):
        rdir = out / f"round{r}"
        record: dict = {"round": r}
        if r > 0 and cfg.mode in ("alternate", "generator_only"):
            if not (rdir / "generator" / "config.json").exists():
                record["generator_phase"] = train_generator(
                    gen, rec, cfg.catalog, out / f"round{r - 1}" / "ids", rdir / "generator", cfg.generator_steps,
                    cfg.generator_lr, cfg.generator_batch_size, seed=cfg.seed + r)
            gen = rdir / "generator"
        ids_dir = rdir / "ids" if (r == 0 or cfg.mode != "recommender_only") else out / "round0" / "ids"
        if not (ids_dir / "item_ids.parquet").exists():
            run_ids(IDJobConfig(catalog=cfg.catalog, out=ids_dir, model=gen, actors=cfg.actors,
                                user_ids=cfg.user_ids, groups=cfg.groups))
        if r == 0 or cfg.mode in ("alternate", "recommender_only"):
            shards = rdir / "shards"
            if not (shards / "manifest.json").exists():
                write_shards(ShardsConfig(catalog=[cfg.catalog], ids=[ids_dir], out=shards, user_ids=cfg.user_ids,
                                          samples_per_shard=cfg.samples_per_shard, seed=cfg.seed + r))
            rec = _train_recommender(cfg, shards, ids_dir, rec, rdir / "recommender")
            summary = json.loads((rdir / "recommender" / "summary.json").read_text())
            record["valid_best"] = summary.get("best")
            record["test_at_best"] = summary.get("test_at_best")
        history.append(record)
        log.info("round %d: %s", r, json.dumps(record))
    result = {"mode": cfg.mode, "rounds": history, "final_recommender": str(rec), "final_generator": str(gen)}
    write_json(out / "alternate.json", result)
    return result
