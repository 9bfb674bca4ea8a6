"""Quality benchmark: ours (the standard recipe, ``cluster/standard.py``) against SASRec-CE, popularity, a
first-order Markov chain (successors of the last item) and the user's recent items on real datasets, in one run, on
the same users of the same split; CPU-sized. The Markov chain counts every transition before the test item, as its
users run it; ``Markov-trn`` is the same chain on the trained models' data (no user's move into its validation item).

Default datasets (``../shared/data``): Scientific, Office_Industrial, a seeded 3,000-user slice of Yelp (a name and
categories as item text) and the shipped Beauty sample; any folder in the shared layout by ``--data`` (``--users``
gives slices, 0 = all users; ``--standard.text-fields title`` a thin-text variant, names only). Each dataset's
recommender follows the recipe's schedule, which counts optimizer steps and epochs, never seconds: warmup, then the
rate held until validation reaches a plateau (a standard error below its best, after a minimum of epochs) or the
recipe's epoch cap is one anneal away, then an anneal that ends the run. So a seed takes the same steps beside any
load and reaches the same validation figures on the same numeric stack (``env`` in quality.json: CPU kernels,
threads, library versions; another machine drifts from the last digits on); only the seconds differ. The epoch with
the best validation is selected; test is reported only. The recommender's recipe is
``pretrain/recipes/quality_cpu.yaml`` (on a GPU ``configs/beauty.yaml``, with 3x the warm-start steps) unless
``--standard.train_config`` names another.

``--seeds 0 1 2`` runs the whole pipeline (slice, tokenizer, warm start, IDs, shards, recommender, SASRec) once per
seed, seed s > 0 in ``out/<dataset>-seed<s>/``; the table gives each figure's mean and spread over the seeds.

Writes ``out/<dataset>/`` (every step, resumable: stop it and run the same command again), ``quality.json`` after
every dataset and seed (metrics, best epochs, seconds, the configs of every method; ``spread``: mean and standard
deviation over seeds) and ``table.txt``; the table is printed last, with the published figures on a dataset of the
same name run on all its users (``eval.published``: the paper's Table 4, its user IDs leaky, and other models'
papers) as labelled rows.

    python bench/quality.py [--data DIR ...] [--users N ...] [--seeds S ...] [--out runs/quality] [--device cpu|cuda]
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field, replace
from typing import ClassVar
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (REPO, SHARED_DATA, bench_config, markov_hybrid,  # noqa: E402  (puts the repo on the path)
                    metric_cells, recorded_run, text_prior_on_test)

from cluster.idjob import IDJobConfig  # noqa: E402
from cluster.standard import HELP as STANDARD_HELP  # noqa: E402
from cluster.standard import StandardConfig  # noqa: E402
from eval.metrics import METRICS  # noqa: E402
from eval.hybrid import HYBRID_GRID  # noqa: E402
from eval.published import published  # noqa: E402
from infra.config import nested_help  # noqa: E402
from recommender.text_prior import WEIGHT_GRID  # noqa: E402

DEFAULT_DATA = [SHARED_DATA / "Scientific", SHARED_DATA / "Office_Industrial", SHARED_DATA / "Yelp",
                REPO / "catalog" / "sample" / "Beauty"]
DEFAULT_PLAN = {"names": ["Scientific", "Office_Industrial", "Yelp-3k", "Beauty-sample"], "users": [0, 0, 3000, 0]}


@dataclass
class QualityConfig:
    data: list[Path] = field(default_factory=lambda: list(DEFAULT_DATA))
    names: list[str] = field(default_factory=list)
    users: list[int] = field(default_factory=list)
    out: Path = Path("runs/quality")
    epochs: int = 0
    seeds: list[int] = field(default_factory=lambda: [0])
    text_prior_grid: list[float] = field(default_factory=lambda: list(WEIGHT_GRID))
    markov_grid: list[float] = field(default_factory=lambda: list(HYBRID_GRID))
    device: str = "auto"
    # the standard recipe as this benchmark runs it: IDs in this process, the recommender started from the
    # generator (its recipe: standard.train_config, default pretrain/recipes/quality_cpu.yaml)
    standard: StandardConfig = field(default_factory=lambda: StandardConfig(
        init_from_generator=True, ids=IDJobConfig(actors=0)))

    FILLED: ClassVar[dict] = {"standard": ("data", "out", "domain", "users", "procs", "device", "with_sasrec",
                                           "seed")}

    def check(self) -> None:
        for name in ("names", "users"):
            if getattr(self, name) and len(getattr(self, name)) != len(self.data):
                raise ValueError(f"give one --{name} per --data (or none)")

    def plan(self) -> list[tuple[Path, str, int]]:
        """(folder, name, users) per dataset: the default datasets get their names and the Yelp slice; others
        their folder names and all users, unless given."""
        default = DEFAULT_PLAN if [Path(d) for d in self.data] == DEFAULT_DATA else {}
        names = self.names or default.get("names") or [Path(d).resolve().name for d in self.data]
        users = self.users or default.get("users") or [0] * len(self.data)
        return list(zip(map(Path, self.data), names, users))


HELP = {"data": "dataset folders (shared layout)", "names": "a name per dataset (default: folder names)",
        "users": "per dataset: a seeded slice of this many users (0: all; default: all, 3,000 for the default Yelp)",
        "out": "benchmark folder",
        "epochs": "the recommender's epoch cap (0: the recipe's); the schedule anneals and ends earlier when "
                  "validation reaches a plateau",
        "seeds": "run every dataset once per seed (the whole pipeline); the table shows mean and spread",
        "text_prior_grid": "weights of the text prior (recommender.text_prior) tried on validation for the row "
                           "'ours+text' (a hybrid: ours plus text similarity, its own row beside pure ours; empty: "
                           "no such row)",
        "markov_grid": "weights of the Markov chain tried on validation for the row 'ours+Markov' (a hybrid: "
                       "ours merged with the Markov chain's ranking, eval.hybrid; its own row beside pure ours; "
                       "empty: no such row)",
        "device": "auto, cpu or cuda",
        "standard.train_config": "recommender recipe (pretrain.train fields); default "
                                 "pretrain/recipes/quality_cpu.yaml, or configs/beauty.yaml on a GPU",
        **nested_help("standard", {k: v for k, v in STANDARD_HELP.items() if k != "train_config"})}


def seed_name(name: str, seed: int) -> str:
    """The results key and folder of a dataset's run with ``seed`` (seed 0 keeps the plain name)."""
    return name if seed == 0 else f"{name}-seed{seed}"


def one_dataset(cfg: QualityConfig, data: Path, name: str, users: int, device: str, sasrec: bool = True,
                seed: int = 0) -> dict:
    """Ours (the standard recipe with this benchmark's recommender recipe), SASRec (unless ``sasrec`` is off) and
    the list baselines (popularity, Markov chain, recent items), every step with ``seed``."""
    from cluster.standard import run_standard
    from infra.config import load_config
    from pretrain.config import CPU_RECIPE
    from pretrain.train import TrainConfig

    out = cfg.out / seed_name(name, seed)
    gpu = device.startswith("cuda")
    base = cfg.standard
    std = replace(base, data=data, out=out, domain=name, users=users, procs=1, device=device, with_sasrec=sasrec,
                  seed=seed, warmstart=replace(base.warmstart, steps=base.warmstart.steps * (3 if gpu else 1)))
    recipe = base.train_config or (REPO / "configs" / "beauty.yaml" if gpu else CPU_RECIPE)
    train = replace(load_config(TrainConfig, recipe), engine="torch", zero_stage=0)
    if cfg.epochs:
        train = replace(train, epochs=cfg.epochs)
    t = time.time()
    result = run_standard(std, train)
    hybrid = text_prior_on_test(out, result, cfg.text_prior_grid) if cfg.text_prior_grid else None
    with_markov = markov_hybrid(out, cfg.markov_grid) if cfg.markov_grid else None
    return result | {"recipe": str(recipe), "wall_s": round(time.time() - t, 1), "ours_text_prior": hybrid,
                     "ours_markov": with_markov}


def spread(runs: list[dict | None]) -> dict:
    """Per method and metric, the mean, sample standard deviation and number of the seeds' test figures (the runs
    that finished)."""
    import statistics

    tests: dict[str, list[dict]] = {}
    for r in runs:
        if isinstance(r, dict) and "ours" in r:
            for method, v in r.items():
                if isinstance(v, dict) and isinstance(v.get("test"), dict) and v["test"]:
                    tests.setdefault(method, []).append(v["test"])
    return {method: {m: {"mean": statistics.fmean(t[m] for t in ts),
                         "sd": statistics.stdev([t[m] for t in ts]) if len(ts) > 1 else 0.0, "n": len(ts)}
                     for m in METRICS} for method, ts in sorted(tests.items())}


def spread_table(spreads: dict) -> str:
    """Mean +- standard deviation over seeds, per dataset and method."""
    rows = [f"{'dataset':18s} {'method':16s} " + " ".join(f"{m:>15s}" for m in METRICS) + "  seeds"]
    for name, methods in spreads.items():
        for method, cells in methods.items():
            rows.append(f"{name:18s} {method:16s} " + " ".join(f"{c['mean']:.4f} ± {c['sd']:.4f}"
                                                             for c in (cells[m] for m in METRICS))
                        + f"  {min(c['n'] for c in cells.values())}")
    return "\n".join(rows)


def table(results: dict) -> str:
    rows = [f"{'dataset':18s} {'method':11s} " + " ".join(f"{m:>8s}" for m in METRICS) + "  best epoch   seconds"]
    for name, r in results.items():
        if not isinstance(r, dict) or "ours" not in r:
            continue
        ours, sas, pop = r["ours"]["test"], r["sasrec"]["test"], r["popularity"]["test"]
        rows_of = [("ours", ours, f"{r['ours']['best']['epoch']:>4d} of {r['ours']['epochs_run']:<4d}")]
        if (r.get("ours_text_prior") or {}).get("test"):  # the hybrid, its weight chosen on validation
            rows_of.append(("ours+text", r["ours_text_prior"]["test"], f"weight {r['ours_text_prior']['chosen']:g}"))
        if (r.get("ours_markov") or {}).get("test"):  # the hybrid with the Markov chain, chosen on validation
            rows_of.append(("ours+Markov", r["ours_markov"]["test"], f"weight {r['ours_markov']['chosen']:g}"))
        rows_of += [("SASRec", sas, f"{r['sasrec']['best_epoch']:>4d} of {r['sasrec']['epochs_run']:<4d}"),
                    ("popularity", pop, " " * 12)]
        for key, label in (("markov", "Markov"), ("markov_train", "Markov-trn"), ("recent", "recent"),
                           ("text_similarity", "text sim")):
            # (results written before a baseline existed have no row for it)
            if key in r:
                rows_of.append((label, r[key]["test"], " " * 12))
        for label, figures in published(name, "standard", r["users"]).items():  # cited, not run; all users only
            rows_of.append(("[published]", figures, label))
        for method, m, extra in rows_of:
            rows.append(f"{name:18s} {method:11s} " + metric_cells(m) + f"  {extra}")
        ratios = {k: ours[k] / max(sas[k], 1e-9) for k in METRICS}
        chosen = "".join(f"; {name} {'off' if lever['chosen'] is None else lever['chosen']}"  # chosen on validation
                         for key, name in (("repeat_bias", "repeat bias"), ("id_prior", "ID prior"))
                         if (lever := r["ours"].get(key)) is not None)  # (results written before a lever have none)
        trained = r["seconds"].get("recommender")  # absent when this run reused a recommender trained before
        trained = "reused, trained by an earlier run" if trained is None else f"{trained:.0f} s training"
        rows.append(f"{name:18s} {'ours/SAS':11s} " + metric_cells(ratios, "8.2f")
                    + f"  ({r['users']} users, {r['items']} items; ours {trained}{chosen}, "
                      f"SASRec {r['sasrec']['seconds']:.0f} s)")
    if results.get("spread"):
        rows += ["", "mean ± standard deviation over seeds (test)", spread_table(results["spread"])]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from infra.device import resolve_device

    cfg = bench_config(QualityConfig, HELP, __doc__, argv)
    device = str(resolve_device(cfg.device))
    run = recorded_run(cfg.out, "quality.json", device)
    for data, name, users in cfg.plan():
        for seed in cfg.seeds:
            run.phase(seed_name(name, seed), lambda: one_dataset(cfg, data, name, users, device, seed=seed))
    if len(cfg.seeds) > 1:
        run.results["spread"] = {name: spread([run.results.get(seed_name(name, s)) for s in cfg.seeds])
                                 for _, name, _ in cfg.plan()}
        run.save()
    text = table(run.results)
    (cfg.out / "table.txt").write_text(text + "\n")
    print("\n" + text)
    return 1 if run.results["errors"] else 0


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    sys.exit(main())
