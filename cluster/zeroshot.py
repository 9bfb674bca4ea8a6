"""``idgenrec zeroshot``: a pretrained generator + recommender on datasets never seen in training.

For each held-out dataset (one Ray task each): prepare its catalog, generate IDs for its unseen items with the
trained generator (Algorithm 1, the Ray ID job), build the trie, and evaluate the test split with no training on it
(or, on a *validation domain*, the valid split with the repeat bias and text prior chosen there: a held-out domain
that selects a foundation model's settings for the domains it will meet, never their own test).
Catalogs, ID tables and metrics are cached per dataset under ``out/<name>/``: a rerun after a crash skips finished
datasets and resumes unfinished ID jobs.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from catalog.heldout import check_unseen, domains_seen
from catalog.prepare import PrepareConfig, prepare
from cluster.idjob import IDJobConfig, ids_done, run_ids_step
from cluster.ray_session import gpu_share, start_ray, stop_ray
from catalog.id_table import id_folder_digest, item_id_texts, legacy_id_folder_digest
from catalog.store import read_catalog
from eval.baselines import zero_shot_baselines
from eval.evaluate import EvalConfig, evaluate
from eval.metrics import METRICS, id_quality
from idgen.tags import generator_input
from eval.runs import read_eval, write_eval
from infra.atomic import write_json
from infra.fingerprint import content_digest, settings_digest, step_done, write_stamp

log = logging.getLogger("idgenrec.zeroshot")


@dataclass
class ZeroShotConfig:
    generator: Path | None = None
    recommender: Path | None = None
    data: list[Path] = field(default_factory=list)
    out: Path | None = None
    actors: int = 1
    groups: int = 10
    beams: int = 20
    batch_size: int = 64
    max_users: int = 0
    split: str = "test"
    copy_source: bool = False
    repeat_bias: float | None = None
    text_prior: float | None = None
    id_prior: float | None = None
    repeat_bias_grid: list[float] = field(default_factory=list)
    text_prior_grid: list[float] = field(default_factory=list)
    id_prior_grid: list[float] = field(default_factory=list)
    explore_rates: list[float] = field(default_factory=list)
    address: str | None = None
    device: str = "auto"


HELP = {"generator": "trained ID generator directory", "recommender": "trained recommender directory",
        "data": "held-out dataset folders", "out": "output folder (per-dataset caches and zeroshot.json)",
        "actors": "ID generator actors per dataset", "max_users": "evaluate the first N users (0 = all)",
        "split": "test (zero-shot figures) or valid (a validation domain: the grids below choose settings there)",
        "copy_source": "IDs of the held-out items made of tokens of their own text only (an ID job setting)",
        "repeat_bias": "also rank each user's history items at the model's score + this bias (the one chosen on the "
                       "pretraining data's validation, in the recommender run's summary.json; default: off)",
        "text_prior": "add this weight x each item's text similarity to the user's last items to the beam scores "
                      "(chosen on the pretraining data's validation; default: off)",
        "id_prior": "subtract this beta x each ID's score after a prompt with no history (recommender.id_prior; "
                    "chosen on a validation domain; default: off)",
        "id_prior_grid": "split valid only: choose the ID prior's beta among these values and off, by NDCG@10",
        "repeat_bias_grid": "split valid only: choose the repeat bias among these values and off, by NDCG@10",
        "text_prior_grid": "split valid only: choose the text prior's weight among these values and off, by NDCG@10",
        "explore_rates": "the repeat mode: the hit rate at each rank of ours on a validation domain (explore_rates "
                         "in its zeroshot_valid.json); each held-out dataset's history items join the ranking by a "
                         "repeat probability read from its own histories (none where they never repeat); "
                         "default: off",
        "device": "auto (GPU shares when the Ray cluster has GPUs), cpu or cuda"}


def zeroshot_one(cfg: ZeroShotConfig, data: Path, gpus_per_actor: float | None = None) -> dict:
    """One held-out dataset, each step cached and keyed on the content of its inputs (a generator or recommender
    retrained in place redoes the IDs or the evaluation)."""
    name = Path(data).resolve().name
    d = Path(cfg.out) / name
    inputs = {"data": content_digest(data)}
    if not step_done(f"{name}: prepare", d / "catalog", inputs, (d / "catalog" / "stats.json").exists()):
        prepare(PrepareConfig(data=Path(data), out=d / "catalog", domain=name))
        write_stamp(d / "catalog", inputs)
    id_cfg = IDJobConfig(catalog=d / "catalog", out=d / "ids", model=cfg.generator, actors=cfg.actors,
                         groups=cfg.groups, copy_source=cfg.copy_source, device=cfg.device,
                         gpus_per_actor=gpus_per_actor)
    inputs = {"catalog": content_digest(d / "catalog"), "model": content_digest(cfg.generator),
              "settings": id_cfg.result_hash()}
    if not ids_done(f"{name}: item IDs", id_cfg, inputs):
        run_ids_step(id_cfg, inputs)
    inputs |= {"ids": id_folder_digest(d / "ids"), "recommender": content_digest(cfg.recommender),
               "settings": settings_digest([cfg.split, cfg.beams, cfg.batch_size, cfg.max_users, cfg.repeat_bias,
                                            cfg.text_prior, cfg.repeat_bias_grid, cfg.text_prior_grid,
                                            cfg.id_prior, cfg.id_prior_grid]
                                           + ([cfg.explore_rates] if cfg.explore_rates else []))}
    done = read_eval(d, cfg.split)
    # a valid result without explore_rates predates the repeat mode, which reads them: redone
    complete = done is not None and bool(done.get("zero_shot")) and (cfg.split == "test" or "explore_rates" in done)
    if step_done(f"{name}: evaluation", d, inputs, complete, {"ids": legacy_id_folder_digest(d / "ids")}):
        return done
    metrics = evaluate(EvalConfig(model=cfg.recommender, catalog=d / "catalog", ids=d / "ids", out=d,
                                  split=cfg.split, beams=cfg.beams, batch_size=cfg.batch_size,
                                  max_users=cfg.max_users, repeat_bias=cfg.repeat_bias, text_prior=cfg.text_prior,
                                  repeat_bias_grid=cfg.repeat_bias_grid, text_prior_grid=cfg.text_prior_grid,
                                  id_prior=cfg.id_prior, id_prior_grid=cfg.id_prior_grid,
                                  explore_rates=cfg.explore_rates, device=cfg.device))
    metrics["zero_shot"] = True  # no interaction of this dataset was seen in training: the report labels it so
    metrics |= held_out_figures(d, cfg.split, cfg.max_users)
    write_eval(d, cfg.split, metrics)
    write_stamp(d, inputs)
    return metrics


def held_out_figures(d: Path, split: str, max_users: int) -> dict:
    """What a zero-shot figure is read against, on the same users: the baselines (zero-shot peers and in-domain
    references, labelled) and the quality of the held-out catalog's IDs."""
    cat = read_catalog(d / "catalog")
    ids = item_id_texts(d / "ids", cat.item_ids)
    return {"items": len(cat.item_ids),
            "baselines": zero_shot_baselines(cat.item_ids, cat.texts, cat.sequences, split, max_users),
            "id_quality": id_quality([generator_input(t) for t in cat.texts], ids)}


def run_zeroshot(cfg: ZeroShotConfig) -> dict:
    if not cfg.data or None in (cfg.generator, cfg.recommender, cfg.out):
        raise ValueError("zeroshot needs generator, recommender, data and out")
    if cfg.split not in ("valid", "test"):
        raise ValueError(f"zeroshot split must be valid or test, got {cfg.split!r}")
    if cfg.split == "test" and (cfg.repeat_bias_grid or cfg.text_prior_grid or cfg.id_prior_grid):
        raise ValueError("the grids choose settings on a validation domain (split valid), never on test")
    # zero-shot means neither model (nor their tokenizer) has seen the dataset
    check_unseen({f"the generator {cfg.generator}": domains_seen(cfg.generator),
                  f"the recommender {cfg.recommender}": domains_seen(cfg.recommender)},
                 {Path(d).resolve().name for d in cfg.data}, "zeroshot")
    import ray

    started = start_ray(cfg.address, cfg.actors)
    try:
        # every dataset's task and its ID actors take an equal GPU share (when the cluster has GPUs), all at once:
        # a task holding a share while its actors wait for more could never finish
        share, _ = gpu_share(cfg.device, ray.cluster_resources().get("GPU", 0), len(cfg.data) * (cfg.actors + 1))
        task = ray.remote(num_cpus=0, num_gpus=share)(zeroshot_one)  # the ID actors inside take the CPUs
        results = ray.get([task.remote(cfg, d, share or None) for d in cfg.data])
    finally:
        if started:
            stop_ray()
    summary = {Path(d).resolve().name: {k: m[k] for k in ("users", *METRICS)}
               | {k: m.get(k) for k in ("items", "baselines", "id_quality", "repeat_bias", "without_repeat_bias",
                                            "text_prior", "without_text_prior", "repeat_bias_ndcg10",
                                            "text_prior_ndcg10", "id_prior", "without_id_prior",
                                            "id_prior_ndcg10", "explore_rates", "repeat_mode",
                                            "without_repeat_mode")}
               for d, m in zip(cfg.data, results)}
    write_json(Path(cfg.out) / ("zeroshot.json" if cfg.split == "test" else f"zeroshot_{cfg.split}.json"), summary)
    return summary
