"""``idgenrec alternate``: the paper's alternate training (section 2.5) and its two ablations (Table 5), as rounds:

1. generator phase (rounds 1, 2, ...): the ID generator learns through the frozen recommender (pretrain.id_phase);
2. IDs regenerated for every item with Algorithm 1 (the Ray job, cluster.idjob);
3. recommender phase: fresh shards, then the DeepSpeed trainer under the ``deepspeed`` launcher, starting from the
   previous round's best recommender, with validation-based selection.

``mode`` picks what learns:
- ``alternate``: both (1 from round 1 on, 3 every round);
- ``recommender_only`` (the paper's Rec-only): IDs stay those of the warm-started generator; only 3;
- ``generator_only`` (the paper's ID-only): the recommender is never trained: it stays the initial model the train
  config names (``init``, e.g. a local t5-small, or a fresh model of ``model_size``), and only the generator learns.

Every round's recommender is scored with that round's IDs on validation and test; the round with the best
validation NDCG@10 is the result (``final`` in ``alternate.json``; test is reported, never used to choose), so the
three modes give a Table-5-like comparison from one command each. Every step writes its own folder under
``out/round<R>/`` and is skipped when complete: a rerun continues where it stopped.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from catalog.id_table import id_folder_digest, legacy_id_folder_digest
from cluster.idjob import HELP as IDS_HELP
from cluster.idjob import IDJobConfig, ids_done, run_ids_step
from eval.evaluate import EvalConfig, evaluate
from eval.metrics import METRICS
from eval.runs import TrainingRun, read_eval
from infra.atomic import write_json
from infra.config import config_to_dict, load_config, nested_help
from infra.fingerprint import content_digest, read_stamp, set_aside, settings_digest, step_done, write_stamp
from pretrain.id_phase import train_generator
from pretrain.launch import launch_train
from pretrain.shards import HELP as SHARDS_HELP
from pretrain.shards import ShardsConfig, write_shards
from pretrain.train import TrainConfig, initial_model

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
    procs: int = 2
    generator_steps: int = 100
    generator_lr: float = 1e-4
    generator_batch_size: int = 16
    seed: int = 0
    device: str = "auto"
    ids: IDJobConfig = field(default_factory=IDJobConfig)  # each round's ID job (actors, groups, Algorithm 1)
    shards: ShardsConfig = field(default_factory=ShardsConfig)  # each round's shards

    FILLED: ClassVar[dict] = {  # set by the recipe: folders, and its own fields above
        "ids": ("catalog", "out", "model", "user_ids", "device", "address"),
        "shards": ("catalog", "ids", "out", "user_ids", "seed", "split")}

    def check(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if self.rounds < 1:
            raise ValueError("rounds must be >= 1")


HELP = {"rounds": "alternate rounds (each: a generator phase, new IDs, a recommender phase)",
        "user_ids": "also generate user IDs (from the items before each target: no leak) and put them in prompts",
        "generator_steps": "ID-generator optimizer steps per round (through the frozen recommender)",
        "generator_batch_size": "training samples per generator step",
        "catalog": "catalog directory", "generator": "warm-started ID generator directory (model + tokenizer)",
        "out": "run folder", "train_config": "YAML of the recommender phase (pretrain.train fields)",
        "mode": f"one of {MODES}: alternate, the paper's Rec-only, or its ID-only (recommender never trained)",
        "procs": "deepspeed processes for the recommender phase",
        "generator_lr": "generator-phase learning rate (the paper used 1e-8 with a pretrained T5)",
        "device": "auto (a GPU when present), cpu or cuda: generator phase, ID actors, evaluation",
        **nested_help("ids", IDS_HELP), **nested_help("shards", SHARDS_HELP)}


def _train_config(cfg: AlternateConfig) -> TrainConfig:
    return load_config(TrainConfig, cfg.train_config) if cfg.train_config else TrainConfig()


def _train_recommender(cfg: AlternateConfig, shards: Path, ids: Path, init: Path | None, out: Path) -> dict:
    """The recommender phase (skipped when its summary exists); its summary (best epoch on valid, test there)."""
    run = TrainingRun(out)
    inputs = {"shards": content_digest(shards), "ids": id_folder_digest(ids),
              "catalog": content_digest(cfg.catalog), "init": content_digest(init),
              "settings": settings_digest([cfg.train_config and content_digest(cfg.train_config), cfg.procs])}
    if not step_done("recommender", out, inputs, run.done(), {"ids": legacy_id_folder_digest(ids)}):
        if read_stamp(out) != inputs:
            set_aside(out)  # checkpoints of other inputs are never resumed
        write_stamp(out, inputs)
        args = ["--shards", shards, "--out", out, "--valid-catalog", cfg.catalog, "--valid-ids", ids]
        if cfg.train_config:
            args += ["--config", cfg.train_config]
        if init:
            args += ["--init", init]
        elif _train_config(cfg).init is None:
            args += ["--tokenizer", cfg.generator]  # a fresh recommender speaks the generator's vocabulary
        launch_train(cfg.procs, args, check=True)
    return run.summary()


def _frozen_recommender(cfg: AlternateConfig, out: Path) -> Path:
    """ID-only: the initial recommender the train config names, saved once and never trained."""
    from seq2seq.model import save_model

    tcfg = _train_config(cfg)
    if tcfg.init is not None:
        return Path(tcfg.init)
    if not (out / "config.json").exists():
        tcfg.tokenizer = cfg.generator
        model, tok = initial_model(tcfg)
        save_model(model, tok, out, {"note": "initial recommender, never trained (mode generator_only)"})
    return out


def _scores(cfg: AlternateConfig, model: Path, ids: Path, out: Path) -> dict:
    """Validation and test metrics of a recommender with a set of IDs (cached in ``out``); the repeat bias is
    chosen on validation (the train config's ``eval_repeat_bias_grid``) and used on test, as the trainer does."""
    result, repeats = {}, {"repeat_bias_grid": _train_config(cfg).eval_repeat_bias_grid}
    inputs = {"model": content_digest(model), "ids": id_folder_digest(ids),
              "catalog": content_digest(cfg.catalog), "settings": settings_digest([cfg.user_ids, repeats])}
    fresh = not step_done("scores", out, inputs, all(read_eval(out, s) is not None for s in ("valid", "test")),
                          {"ids": legacy_id_folder_digest(ids)})
    for split in ("valid", "test"):
        m = (None if fresh else read_eval(out, split)) or evaluate(EvalConfig(
            model=model, catalog=cfg.catalog, ids=ids, out=out, split=split, user_ids=cfg.user_ids,
            device=cfg.device, **repeats))
        result[split] = {k: m[k] for k in ("users", *METRICS)}
        repeats = {"repeat_bias": m.get("repeat_bias")}
    if fresh:
        write_stamp(out, inputs)
    return result


def run_alternate(cfg: AlternateConfig) -> dict:
    if None in (cfg.catalog, cfg.generator, cfg.out):
        raise ValueError("alternate needs catalog, generator and out")
    out = Path(cfg.out)
    gen, rec, history = Path(cfg.generator), None, []
    init = _train_config(cfg).init
    if init is not None and cfg.mode != "recommender_only":  # the generator phase mixes both vocabularies
        from catalog.tokenizer import load_tokenizer, require_same_tokenizer

        require_same_tokenizer(load_tokenizer(cfg.generator), f"the generator {cfg.generator}", load_tokenizer(init),
                               f"the recommender's init {init}")
    frozen = _frozen_recommender(cfg, out / "recommender_init") if cfg.mode == "generator_only" else None
    for r in range(cfg.rounds):
        rdir = out / f"round{r}"
        record: dict = {"round": r}
        if r > 0 and cfg.mode != "recommender_only":
            last_ids = out / f"round{r - 1}" / "ids"
            inputs = {"generator": content_digest(gen), "recommender": content_digest(frozen or rec),
                      "ids": id_folder_digest(last_ids),
                      "catalog": content_digest(cfg.catalog),
                      "settings": settings_digest([cfg.generator_steps, cfg.generator_lr, cfg.generator_batch_size,
                                                   cfg.seed + r])}
            if not step_done(f"round {r} generator", rdir / "generator", inputs,
                             (rdir / "generator" / "config.json").exists(),
                             {"ids": legacy_id_folder_digest(last_ids)}):
                set_aside(rdir / "generator")
                record["generator_phase"] = train_generator(
                    gen, frozen or rec, cfg.catalog, last_ids, rdir / "generator",
                    cfg.generator_steps, cfg.generator_lr, cfg.generator_batch_size, seed=cfg.seed + r,
                    device=cfg.device)
                write_stamp(rdir / "generator", inputs)
            gen = rdir / "generator"
        ids_dir = rdir / "ids" if (r == 0 or cfg.mode != "recommender_only") else out / "round0" / "ids"
        id_cfg = replace(cfg.ids, catalog=cfg.catalog, out=ids_dir, model=gen, user_ids=cfg.user_ids,
                         device=cfg.device)
        inputs = {"catalog": content_digest(cfg.catalog), "model": content_digest(gen),
                  "settings": id_cfg.result_hash()}
        if not ids_done(f"round {r} IDs", id_cfg, inputs):
            run_ids_step(id_cfg, inputs)
        if frozen is not None:
            rec = frozen
            record |= _scores(cfg, rec, ids_dir, rdir / "eval")
        else:
            shards = rdir / "shards"
            inputs = {"catalog": content_digest(cfg.catalog), "ids": id_folder_digest(ids_dir),
                      "settings": settings_digest([config_to_dict(cfg.shards), cfg.user_ids, cfg.seed + r])}
            if not step_done(f"round {r} shards", shards, inputs, (shards / "manifest.json").exists(),
                             {"ids": legacy_id_folder_digest(ids_dir)}):
                write_shards(replace(cfg.shards, catalog=[cfg.catalog], ids=[ids_dir], out=shards,
                                     user_ids=cfg.user_ids, seed=cfg.seed + r))
                write_stamp(shards, inputs)
            summary = _train_recommender(cfg, shards, ids_dir, rec, rdir / "recommender")
            rec = TrainingRun(rdir / "recommender").best
            best = summary["best"]["epoch"]
            record |= {"valid": TrainingRun.selected_valid(summary),
                       "test": summary["test_at_best"], "best_epoch": best}
        record |= {"generator": str(gen), "recommender": str(rec), "ids": str(ids_dir)}
        history.append(record)
        log.info("round %d: valid NDCG@10 %.4f, test NDCG@10 %.4f", r, record["valid"]["NDCG@10"],
                 record["test"]["NDCG@10"])
    final = max(history, key=lambda h: h["valid"]["NDCG@10"])  # selected on validation only
    result = {"mode": cfg.mode, "rounds": history, "final": {k: final[k] for k in (
        "round", "valid", "test", "generator", "recommender", "ids")}}
    write_json(out / "alternate.json", result)
    return result
