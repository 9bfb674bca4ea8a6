"""``idgenrec standard``: the paper's standard setting on one dataset, end to end, as one readable recipe.

    data slice (optional) -> prepare -> tokenizer -> generator warm start -> item IDs (Algorithm 1)
      -> shards -> recommender (validation selection, test at the best epoch) -> SASRec
      -> popularity, Markov chain, recent items (``eval.baselines``)

Each step writes its own folder under ``out/`` and is skipped when that folder is complete and was made from inputs
of the same content (``infra.fingerprint``): a rerun continues where it stopped, and a step whose input changed
(say, a generator retrained in place) runs again, with every step after it. The demo, the GPU run and the quality
benchmark call this same function with other sizes: there is no second copy of the pipeline. The recommender phase
takes any trainer config (``train_config`` YAML, or a ``TrainConfig`` from code); with ``procs`` > 1 it runs under
the deepspeed launcher, else in this process.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from catalog.prepare import PrepareConfig, prepare
from catalog.sample import write_slice
from catalog.store import read_catalog
from catalog.tokenizer import TokenizerConfig, make_tokenizer
from cluster.idjob import IDJobConfig, run_ids
from eval.baselines import markov_metrics, popularity_metrics, recent_metrics
from eval.runs import TrainingRun, read_sasrec, write_sasrec
from eval.sasrec import SASRecConfig, train_sasrec
from idgen.warmstart import WarmStartConfig, warmstart
from infra.atomic import write_json
from infra.config import config_to_args, config_to_dict, load_config
from infra.device import resolve_device
from infra.fingerprint import content_digest, read_stamp, set_aside, settings_digest, step_done, write_stamp
from pretrain.launch import launch_train
from pretrain.shards import ShardsConfig, write_shards
from pretrain.train import TrainConfig, final_test, train
from recommender.prompts import TEMPLATES

log = logging.getLogger("idgenrec.standard")
METRICS = ("users", "HR@5", "HR@10", "NDCG@5", "NDCG@10")
BASELINES = {"popularity": popularity_metrics, "markov": markov_metrics, "recent": recent_metrics}


@dataclass
class StandardConfig:
    """Everything the recipe does on one dataset (the recommender's own fields live in ``train_config``)."""

    data: Path | None = None
    out: Path | None = None
    domain: str | None = None
    users: int = 0
    heldout: list[Path] = field(default_factory=list)
    vocab_size: int = 8000
    generator_size: str = "mini"
    warmstart_steps: int = 3000
    warmstart_min_epochs: float = 20.0
    warmstart_batch: int = 32
    warmstart_lr: float = 3e-3
    source_tokens: int = 64
    max_tag_words: int = 8
    id_actors: int = 2
    id_window: int = 10
    user_ids: bool = False
    max_history: int = 10
    grounding: list[str] = field(default_factory=list)
    templates: int = len(TEMPLATES)
    samples_per_shard: int = 2000
    train_config: Path | None = None
    init_from_generator: bool = False
    procs: int = 1
    sasrec: bool = True
    sasrec_epochs: int = 200
    seed: int = 0
    device: str = "auto"

    def check(self) -> None:
        if self.users < 0 or self.procs < 1 or self.id_actors < 0:
            raise ValueError("users and id_actors must be >= 0, procs >= 1")


HELP = {"vocab_size": "SentencePiece vocabulary size of the tokenizer trained on the catalog",
        "warmstart_steps": "generator warm-start optimizer steps (raised by warmstart_min_epochs)",
        "warmstart_batch": "item texts per warm-start step", "warmstart_lr": "warm-start learning rate",
        "user_ids": "also generate user IDs (from the items before each target: no leak) and put them in prompts",
        "sasrec_epochs": "SASRec's most epochs (it stops early on validation)",
        "data": "dataset folder (shared layout or a raw public format)", "out": "run folder (one subfolder per step)",
        "domain": "dataset name (default: the folder's name)", "users": "a seeded slice of this many users (0: all)",
        "heldout": "datasets kept unseen: refused as tokenizer / warm-start text",
        "generator_size": "ID generator size (tiny, mini, small or a YAML path)",
        "source_tokens": "item-text tokens the generator reads",
        "warmstart_min_epochs": "warm start for at least this many passes over the catalog (raises warmstart_steps on "
                                "large catalogs: a fresh generator first writes frequent words for every item)",
        "max_tag_words": "words of the warm-start targets (how long the generator's IDs are)",
        "id_window": "Algorithm 1's first length window [1, id_window] tokens (then [w, 2w], ...)",
        "max_history": "history items in a prompt (the most recent; 10 beat 20 on validation on all four "
                       "quality-benchmark datasets)",
        "grounding": "grounding tasks mixed into the shards: text_to_id, id_to_title",
        "templates": "training prompts drawn from the first N of the 10 templates (1: only the evaluation's)",
        "id_actors": "Ray actors for the ID job (0: in this process, no Ray)",
        "train_config": "YAML of the recommender phase (pretrain.train fields)",
        "init_from_generator": "start the recommender from the warm-started generator (else: the train config's "
                               "init, or a fresh model of its model_size)",
        "procs": "recommender processes: > 1 runs the deepspeed launcher, 1 trains in this process",
        "sasrec": "also train and evaluate the SASRec baseline on the same split",
        "device": "auto (a GPU when present), cpu or cuda"}


def recommender_config(cfg: StandardConfig, out: Path, base: TrainConfig | None = None) -> TrainConfig:
    """The trainer's config: ``base`` (or the ``train_config`` file) with this run's data and folders."""
    base = base or (load_config(TrainConfig, cfg.train_config) if cfg.train_config else TrainConfig())
    init = out / "generator" if cfg.init_from_generator else base.init
    return replace(base, shards=out / "shards", out=out / "recommender", init=init,
                   tokenizer=None if init else out / "generator", valid_catalog=out / "catalog", valid_ids=out / "ids")


def _step(name: str, folder: Path, inputs: dict[str, str], complete: bool) -> bool:
    """Whether step ``name`` must run: its outputs in ``folder`` are missing or were made from other inputs
    (content fingerprints, ``infra.fingerprint``). Call :func:`_finished` after it has run."""
    return not step_done(name, folder, inputs, complete)


def _finished(folder: Path, inputs: dict[str, str]) -> None:
    write_stamp(folder, inputs)


def plain_settings(cfg) -> dict:
    """A config's fields without its paths: the content behind the paths is fingerprinted on its own, so a moved
    run folder keeps its finished steps."""
    return {k: v for k, v in config_to_dict(cfg).items()
            if not (isinstance(getattr(cfg, k), Path) or k in ("out", "device"))}


def _timer(seconds: dict):
    def timed(name: str, fn) -> None:
        t = time.time()
        fn()
        seconds[name] = round(time.time() - t, 1)

    return timed


def prepare_data(cfg: StandardConfig, seconds: dict | None = None):
    """The first steps: the seeded slice (when ``users``) and the catalog; returns the catalog."""
    if cfg.data is None or cfg.out is None:
        raise ValueError("standard needs data and out")
    out, timed = Path(cfg.out), _timer({} if seconds is None else seconds)
    data = Path(cfg.data)
    if cfg.users:
        inputs = {"data": content_digest(data), "settings": settings_digest([cfg.users, cfg.seed])}
        if _step("data slice", out / "data", inputs, (out / "data" / "user_sequence.txt").exists()):
            timed("slice", lambda: write_slice(Path(cfg.data), out / "data", cfg.users, seed=cfg.seed))
            _finished(out / "data", inputs)
        data = out / "data"
    inputs = {"data": content_digest(data), "settings": settings_digest(domain_of(cfg))}
    if _step("prepare", out / "catalog", inputs, (out / "catalog" / "stats.json").exists()):
        timed("prepare", lambda: prepare(PrepareConfig(data=data, out=out / "catalog", domain=domain_of(cfg))))
        _finished(out / "catalog", inputs)
    return read_catalog(out / "catalog")


def names(paths: list[Path]) -> list[str]:
    return sorted(Path(p).resolve().name for p in paths)


def domain_of(cfg: StandardConfig) -> str:
    return cfg.domain or Path(cfg.data).resolve().name


def run_standard(cfg: StandardConfig, train_cfg: TrainConfig | None = None, warm: dict | None = None) -> dict:
    """Run (or continue) every step; return and write ``standard.json``: test metrics of ours, SASRec and
    popularity on the same users, with seconds per step. ``warm`` overrides warm-start fields (e.g. bf16)."""
    seconds: dict = {}
    cat = prepare_data(cfg, seconds)
    out, timed, domain = Path(cfg.out), _timer(seconds), domain_of(cfg)
    device = str(resolve_device(cfg.device))
    tok_cfg = TokenizerConfig(catalog=[out / "catalog"], out=out / "tokenizer", vocab_size=cfg.vocab_size,
                              heldout=cfg.heldout, seed=cfg.seed)
    catalog = content_digest(out / "catalog")
    inputs = {"catalog": catalog, "settings": settings_digest([plain_settings(tok_cfg), names(cfg.heldout)])}
    if _step("tokenizer", out / "tokenizer", inputs, (out / "tokenizer" / "tokenizer.json").exists()):
        timed("tokenizer", lambda: make_tokenizer(tok_cfg))
        _finished(out / "tokenizer", inputs)
    ws_cfg = WarmStartConfig(
        catalog=[out / "catalog"], tokenizer=out / "tokenizer", out=out / "generator", model_size=cfg.generator_size,
        steps=cfg.warmstart_steps, min_epochs=cfg.warmstart_min_epochs, batch_size=cfg.warmstart_batch,
        lr=cfg.warmstart_lr, max_source_tokens=cfg.source_tokens, max_tag_words=cfg.max_tag_words,
        heldout=cfg.heldout, seed=cfg.seed, device=device, **(warm or {}))
    inputs = {"catalog": catalog, "tokenizer": content_digest(out / "tokenizer"),
              "settings": settings_digest(plain_settings(ws_cfg))}
    if _step("generator warm start", out / "generator", inputs, (out / "generator" / "warmstart.json").exists()):
        set_aside(out / "generator")  # a generator of other inputs (or retrained by hand) is kept, not overwritten
        timed("warm start", lambda: warmstart(ws_cfg))
        _finished(out / "generator", inputs)
    id_cfg = IDJobConfig(catalog=out / "catalog", out=out / "ids", model=out / "generator", actors=cfg.id_actors,
                         max_source_tokens=cfg.source_tokens, user_ids=cfg.user_ids, max_history=cfg.max_history,
                         window_width=cfg.id_window, device=device)
    inputs = {"catalog": catalog, "model": content_digest(out / "generator"), "settings": id_cfg.result_hash()}
    if _step("item IDs", out / "ids", inputs, (out / "ids" / "item_ids.parquet").exists()):
        timed("item IDs", lambda: run_ids(id_cfg))  # resumes its own work only when made from the same inputs
        _finished(out / "ids", inputs)
    sh_cfg = ShardsConfig(catalog=[out / "catalog"], ids=[out / "ids"], out=out / "shards", user_ids=cfg.user_ids,
                          max_history=cfg.max_history, grounding=cfg.grounding, templates=cfg.templates,
                          samples_per_shard=cfg.samples_per_shard, seed=cfg.seed)
    ids = content_digest(out / "ids", skip=["work"])
    inputs = {"catalog": catalog, "ids": ids, "settings": settings_digest(plain_settings(sh_cfg))}
    if _step("shards", out / "shards", inputs, (out / "shards" / "manifest.json").exists()):
        timed("shards", lambda: write_shards(sh_cfg))
        _finished(out / "shards", inputs)
    tcfg = recommender_config(cfg, out, train_cfg)
    run = TrainingRun(tcfg.out)
    inputs = {"shards": content_digest(out / "shards"), "catalog": catalog, "ids": ids,
              "init": content_digest(tcfg.init or tcfg.tokenizer), "settings": settings_digest(plain_settings(tcfg))}
    if _step("recommender", run.path, inputs, run.done()):
        if read_stamp(run.path) != inputs:  # checkpoints of other inputs must not be resumed: kept, not deleted
            set_aside(run.path)
        _finished(run.path, inputs)  # before training too, so that an interrupted run of these inputs resumes
        timed("recommender", lambda: _train(tcfg, cfg.procs))  # its last step chooses the repeat bias
    elif tcfg.eval_repeat_bias_grid and "repeat_bias" not in run.summary():
        log.info("[repeat bias] the recommender was trained without the grid: choosing on validation, then test")
        timed("repeat bias", lambda: run.write_summary(run.summary() | final_test(tcfg, run.best)))
    summary = run.summary()
    result = {"dataset": domain, "users": len(cat.users), "items": len(cat.item_ids),
              "ours": {"test": summary.get("test_at_best"), "best": summary["best"],
                       "epochs_run": len(summary["history"]), "stopped_early": summary.get("stopped_early"),
                       "valid": next((h.get("valid") for h in summary["history"]
                                      if h["epoch"] == summary["best"]["epoch"]), None),
                       "repeat_bias": summary.get("repeat_bias")},
              **{name: {split: metrics(cat.sequences, split) for split in ("test", "valid")}
                 for name, metrics in BASELINES.items()}}
    if cfg.sasrec:
        result["sasrec"] = _sasrec(cfg, cat, out / "sasrec", domain, device, seconds)
    result |= {"seconds": seconds, "config": config_to_dict(cfg), "train_config": config_to_dict(tcfg)}
    write_json(out / "standard.json", result)
    return result


def _train(tcfg: TrainConfig, procs: int) -> None:
    if procs > 1:
        launch_train(procs, config_to_args(tcfg), check=True)
    else:
        train(tcfg)


def _sasrec(cfg: StandardConfig, cat, folder: Path, domain: str, device: str, seconds: dict) -> dict:
    sasrec_cfg = SASRecConfig(epochs=cfg.sasrec_epochs, seed=cfg.seed, device=device)
    inputs = {"catalog": content_digest(Path(cfg.out) / "catalog"),
              "settings": settings_digest(plain_settings(sasrec_cfg))}
    if _step("SASRec", folder, inputs, read_sasrec(folder) is not None):
        t = time.time()
        write_sasrec(folder, {"dataset": domain, **train_sasrec(cat.sequences, cat.item_ids, sasrec_cfg)})
        seconds["sasrec"] = round(time.time() - t, 1)
        _finished(folder, inputs)
    r = read_sasrec(folder)
    keep = {k: r[k] for k in ("valid", "test", "best_epoch", "epochs_run", "converged", "seconds")}
    return keep | {"config": config_to_dict(sasrec_cfg)}
