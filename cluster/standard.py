"""``idgenrec standard``: the paper's standard setting on one dataset, end to end, as one readable recipe.

    data slice (optional) -> prepare -> tokenizer -> generator warm start -> item IDs (Algorithm 1)
      -> shards -> recommender (validation selection, test at the best epoch) -> SASRec
      -> popularity, Markov chain, recent items, text similarity (``eval.baselines``)

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
from typing import ClassVar
from pathlib import Path

from catalog.id_table import id_folder_digest, legacy_id_folder_digest
from catalog.prepare import PrepareConfig, prepare
from catalog.sample import write_slice
from catalog.split import MAX_HISTORY
from catalog.store import is_catalog, read_catalog, write_catalog
from catalog.tokenizer import HELP as TOKENIZER_HELP
from catalog.tokenizer import TokenizerConfig, make_tokenizer
from cluster.idjob import HELP as IDS_HELP
from cluster.idjob import IDJobConfig, ids_done, run_ids_step
from eval.baselines import (markov_metrics, markov_training_metrics, popularity_metrics, recent_metrics,
                            text_similarity_metrics)
from eval.runs import TrainingRun, read_sasrec, write_sasrec
from eval.sasrec import HELP as SASREC_HELP
from eval.sasrec import SASRecConfig, train_sasrec
from idgen.warmstart import HELP as WARMSTART_HELP
from idgen.warmstart import WarmStartConfig, warmstart
from infra.atomic import write_json
from infra.config import config_to_args, config_to_dict, load_config, nested_help
from infra.device import resolve_device
from infra.fingerprint import content_digest, read_stamp, set_aside, settings_digest, step_done, write_stamp
from pretrain.launch import launch_train
from pretrain.shards import HELP as SHARDS_HELP
from pretrain.shards import ShardsConfig, write_shards
from pretrain.config import AFTER_TRAINING
from pretrain.selection import lever_grids
from pretrain.train import TrainConfig, final_test, train

log = logging.getLogger("idgenrec.standard")
# markov_train: the Markov chain on the transitions the trained models learn from (a same-data row beside "markov")
BASELINES = {"popularity": popularity_metrics, "markov": markov_metrics, "markov_train": markov_training_metrics,
             "recent": recent_metrics}


@dataclass
class StandardConfig:
    """Everything the recipe does on one dataset: its own fields, then each step's component config (YAML sections,
    dotted flags: ``--warmstart.steps 3000``), whose defaults are the components' own. The recipe fills the
    components' folders, and sets ``seed``, ``device``, ``heldout``, ``user_ids`` and ``max_history`` once for every
    step that has them; the ID job reads items with the generator's own ``max_source_tokens``. The recommender's config
    is a trainer recipe (``train_config``)."""

    data: Path | None = None
    out: Path | None = None
    domain: str | None = None
    users: int = 0
    heldout: list[Path] = field(default_factory=list)
    text_fields: list[str] = field(default_factory=list)
    user_ids: bool = False
    max_history: int = MAX_HISTORY
    train_config: Path | None = None
    init_from_generator: bool = False
    procs: int = 1
    with_sasrec: bool = True
    seed: int = 0
    device: str = "auto"
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    warmstart: WarmStartConfig = field(default_factory=WarmStartConfig)
    ids: IDJobConfig = field(default_factory=IDJobConfig)
    shards: ShardsConfig = field(default_factory=ShardsConfig)
    sasrec: SASRecConfig = field(default_factory=SASRecConfig)

    FILLED: ClassVar[dict] = {  # component fields the recipe sets itself: folders, and its own fields above
        "tokenizer": ("catalog", "out", "pretrained", "heldout", "seed"),
        "warmstart": ("catalog", "tokenizer", "out", "heldout", "seed", "device"),
        "ids": ("catalog", "out", "model", "user_ids", "max_history", "device", "address"),
        "shards": ("catalog", "ids", "out", "user_ids", "max_history", "seed", "split"),
        "sasrec": ("catalog", "out", "seed", "device")}

    def check(self) -> None:
        if self.users < 0 or self.procs < 1:
            raise ValueError("users must be >= 0, procs >= 1")


HELP = {"data": "dataset folder (shared layout or a raw public format), or a catalog (e.g. idgenrec corpus's)",
        "out": "run folder (one subfolder per step)",
        "domain": "dataset name (default: the folder's name)", "users": "a seeded slice of this many users (0: all)",
        "heldout": "datasets kept unseen: refused as tokenizer / warm-start text",
        "text_fields": "item fields rendered into the item text (e.g. title: a thin-text variant of the dataset); "
                       "empty: all",
        "user_ids": "also generate user IDs (from the items before each target: no leak) and put them in prompts",
        "max_history": "history items in a prompt (the most recent)",
        "train_config": "YAML of the recommender phase (pretrain.train fields)",
        "init_from_generator": "start the recommender from the warm-started generator (else: the train config's "
                               "init, or a fresh model of its model_size)",
        "procs": "recommender processes: > 1 runs the deepspeed launcher, 1 trains in this process",
        "with_sasrec": "also train and evaluate the SASRec baseline on the same split",
        "device": "auto (a GPU when present), cpu or cuda",
        **nested_help("tokenizer", TOKENIZER_HELP), **nested_help("warmstart", WARMSTART_HELP),
        **nested_help("ids", IDS_HELP), **nested_help("shards", SHARDS_HELP), **nested_help("sasrec", SASREC_HELP)}


def recommender_config(cfg: StandardConfig, out: Path, base: TrainConfig | None = None) -> TrainConfig:
    """The trainer's config: ``base`` (or the ``train_config`` file) with this run's data and folders."""
    base = base or (load_config(TrainConfig, cfg.train_config) if cfg.train_config else TrainConfig())
    init = out / "generator" if cfg.init_from_generator else base.init
    return replace(base, shards=out / "shards", out=out / "recommender", init=init, seed=cfg.seed,
                   tokenizer=None if init else out / "generator", valid_catalog=out / "catalog", valid_ids=out / "ids")


def _step(name: str, folder: Path, inputs: dict[str, str], complete: bool,
          legacy: dict[str, str] | None = None) -> bool:
    """Whether step ``name`` must run: its outputs in ``folder`` are missing or were made from other inputs
    (content fingerprints, ``infra.fingerprint``; ``legacy``: older fingerprints of the same inputs). Call
    :func:`_finished` after it has run."""
    return not step_done(name, folder, inputs, complete, legacy)


def _finished(folder: Path, inputs: dict[str, str]) -> None:
    write_stamp(folder, inputs)


def training_settings(tcfg: TrainConfig) -> dict:
    """What a trained recommender is keyed on besides its inputs' content: the config without paths and without the
    fields that only choose ranking levers afterwards (``pretrain.config.AFTER_TRAINING``)."""
    return {k: v for k, v in plain_settings(tcfg).items() if k not in AFTER_TRAINING}


def missing_levers(tcfg: TrainConfig, summary: dict) -> list[str]:
    """The ranking levers whose grid the config has but the trained run's summary has no choice for (a run trained
    before the grid was set)."""
    return [lever for lever, grid in lever_grids(tcfg).items() if grid and lever not in summary]


def plain_settings(cfg) -> dict:
    """A config's fields without its paths (lists of paths too): the content behind them is fingerprinted on its
    own, so a moved run folder keeps its finished steps."""
    def is_path(v) -> bool:
        return isinstance(v, Path) or (isinstance(v, (list, tuple)) and any(isinstance(x, Path) for x in v))

    return {k: v for k, v in config_to_dict(cfg).items() if not (is_path(getattr(cfg, k)) or k in ("out", "device"))}


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
    if cfg.users and is_catalog(data):
        raise ValueError(f"{data} is a catalog: slice the dataset folders it was made from (users) instead")
    if cfg.text_fields and is_catalog(data):
        raise ValueError(f"{data} is a catalog: its item text is rendered already (text_fields needs a dataset)")
    if cfg.users:
        inputs = {"data": content_digest(data), "settings": settings_digest([cfg.users, cfg.seed])}
        if _step("data slice", out / "data", inputs, (out / "data" / "user_sequence.txt").exists()):
            timed("slice", lambda: write_slice(Path(cfg.data), out / "data", cfg.users, seed=cfg.seed))
            _finished(out / "data", inputs)
        data = out / "data"
    # (text_fields joins the settings only when set, so that catalogs made before it existed stay valid)
    inputs = {"data": content_digest(data), "settings": settings_digest(
        [domain_of(cfg), cfg.text_fields] if cfg.text_fields else domain_of(cfg))}
    if _step("prepare", out / "catalog", inputs, (out / "catalog" / "stats.json").exists()):
        if is_catalog(data):  # a prepared catalog, e.g. a multi-domain corpus: copied as it is
            timed("prepare", lambda: write_catalog(read_catalog(data), out / "catalog"))
        else:
            timed("prepare", lambda: prepare(PrepareConfig(data=data, out=out / "catalog", domain=domain_of(cfg),
                                                           text_fields=list(cfg.text_fields))))
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
    tok_cfg = replace(cfg.tokenizer, catalog=[out / "catalog"], out=out / "tokenizer", heldout=cfg.heldout,
                      seed=cfg.seed)
    catalog = content_digest(out / "catalog")
    inputs = {"catalog": catalog, "settings": settings_digest([plain_settings(tok_cfg), names(cfg.heldout)])}
    if _step("tokenizer", out / "tokenizer", inputs, (out / "tokenizer" / "tokenizer.json").exists()):
        timed("tokenizer", lambda: make_tokenizer(tok_cfg))
        _finished(out / "tokenizer", inputs)
    ws_cfg = replace(cfg.warmstart, catalog=[out / "catalog"], tokenizer=out / "tokenizer", out=out / "generator",
                     heldout=cfg.heldout, seed=cfg.seed, device=device, **(warm or {}))
    inputs = {"catalog": catalog, "tokenizer": content_digest(out / "tokenizer"),
              "settings": settings_digest(plain_settings(ws_cfg))}
    if _step("generator warm start", out / "generator", inputs, (out / "generator" / "warmstart.json").exists()):
        set_aside(out / "generator")  # a generator of other inputs (or retrained by hand) is kept, not overwritten
        timed("warm start", lambda: warmstart(ws_cfg))
        _finished(out / "generator", inputs)
    id_cfg = replace(cfg.ids, catalog=out / "catalog", out=out / "ids", model=out / "generator",
                     user_ids=cfg.user_ids, max_history=cfg.max_history, device=device)
    inputs = {"catalog": catalog, "model": content_digest(out / "generator"), "settings": id_cfg.result_hash()}
    if not ids_done("item IDs", id_cfg, inputs):
        timed("item IDs", lambda: run_ids_step(id_cfg, inputs))  # resumes its own work of the same inputs
    sh_cfg = replace(cfg.shards, catalog=[out / "catalog"], ids=[out / "ids"], out=out / "shards",
                     user_ids=cfg.user_ids, max_history=cfg.max_history, seed=cfg.seed)
    ids, legacy = id_folder_digest(out / "ids"), {"ids": legacy_id_folder_digest(out / "ids")}
    inputs = {"catalog": catalog, "ids": ids, "settings": settings_digest(plain_settings(sh_cfg))}
    if _step("shards", out / "shards", inputs, (out / "shards" / "manifest.json").exists(), legacy):
        timed("shards", lambda: write_shards(sh_cfg))
        _finished(out / "shards", inputs)
    tcfg = recommender_config(cfg, out, train_cfg)
    run = TrainingRun(tcfg.out)
    inputs = {"shards": content_digest(out / "shards"), "catalog": catalog, "ids": ids,
              "init": content_digest(tcfg.init or tcfg.tokenizer),
              "settings": settings_digest(training_settings(tcfg))}
    if _step("recommender", run.path, inputs, run.done(), legacy):
        if read_stamp(run.path) != inputs:  # checkpoints of other inputs must not be resumed: kept, not deleted
            set_aside(run.path)
        _finished(run.path, inputs)  # before training too, so that an interrupted run of these inputs resumes
        timed("recommender", lambda: _train(tcfg, cfg.procs))  # its last step chooses the repeat bias
    elif missing := missing_levers(tcfg, run.summary()):
        log.info("[ranking levers] %s not chosen for this recommender yet: choosing on validation, then test",
                 ", ".join(missing))
        timed("ranking levers", lambda: run.write_summary(run.summary() | final_test(tcfg, run.best)))
    summary = run.summary()
    result = {"dataset": domain, "users": len(cat.users), "items": len(cat.item_ids),
              "ours": {"test": summary.get("test_at_best"), "best": summary["best"],
                       "epochs_run": len(summary["history"]), "stopped_early": summary.get("stopped_early"),
                       "valid": TrainingRun.selected_valid(summary),
                       "repeat_bias": summary.get("repeat_bias"), "id_prior": summary.get("id_prior")},
              **{name: {split: metrics(cat.sequences, split) for split in ("test", "valid")}
                 for name, metrics in BASELINES.items()},
              "text_similarity": {split: text_similarity_metrics(cat.item_ids, cat.texts, cat.sequences, split)
                                  for split in ("test", "valid")}}
    if cfg.with_sasrec:
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
    sasrec_cfg = replace(cfg.sasrec, seed=cfg.seed, device=device)
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
