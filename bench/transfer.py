"""Transfer benchmark: a foundation model trained on some domains, evaluated zero-shot on datasets it never saw,
beside the baselines a user of zero-shot recommendation would run, on the same users, in one run.

    corpus (idgenrec corpus: --pretrain datasets, users capped per domain; --heldout refused as a leak)
      -> the standard recipe on the corpus (tokenizer, generator warm start, IDs, shards, the recommender selected
         on the pretraining domains' validation; its repeat bias chosen there too)
      -> the text prior's weight (recommender.text_prior) chosen on the pretraining domains' validation
      -> idgenrec zeroshot on every --heldout dataset (IDs for its unseen items, test, no training or tuning on it;
         ours reported with the prior, without it, and as plain beams)
      -> beside ours, on the same users: random (analytic), text similarity (TF-IDF of item text to the user's
         last 3 items), recent items then text similarity (zero-shot peers: no interaction of the dataset beyond
         the user's own history); popularity and the Markov chain, labelled in-domain references (counted on the
         dataset's own training interactions); the paper's Table 7 row where it has one.

Every step is cached under ``--out`` and keyed on the content of its inputs: a rerun continues where it stopped.
Writes ``transfer.json`` (per held-out dataset: users, items, the ID quality of its catalog, and per method a
``test`` dict with the four metrics; plus configs and seconds) and ``table.txt``; the table is printed last.
Defaults: Beauty, Sports, Office_Industrial and Scientific (3,000 users each) -> all of Toys and all of Yelp,
sized for about two hours on 2 cores (``--zeroshot.max-users`` scores the first N users of each for a
quicker look). ``--heldout`` takes any dataset folder in the shared layout.

    python bench/transfer.py [--pretrain DIR ...] [--heldout DIR ...] [--out runs/transfer]
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (SHARED_DATA, bench_config, metric_cells, recorded_run,  # noqa: E402  (puts the repo on the path)
                    text_prior_on_validation)

from cluster.idjob import IDJobConfig  # noqa: E402
from cluster.standard import HELP as STANDARD_HELP  # noqa: E402
from cluster.standard import StandardConfig  # noqa: E402
from cluster.zeroshot import HELP as ZEROSHOT_HELP  # noqa: E402
from cluster.zeroshot import ZeroShotConfig  # noqa: E402
from eval.metrics import METRICS  # noqa: E402
from idgen.warmstart import WarmStartConfig  # noqa: E402
from infra.config import nested_help  # noqa: E402
from pretrain.config import TrainConfig  # noqa: E402
from recommender.text_prior import WEIGHT_GRID  # noqa: E402

PRETRAIN = [SHARED_DATA / n for n in ("Beauty", "Sports", "Office_Industrial", "Scientific")]
HELDOUT = [SHARED_DATA / n for n in ("Toys", "Yelp")]
# ../shared/paper/tables.md, Table 7 (a pretrained t5-small on a 19-domain Fusion corpus; zero-shot)
PAPER_TABLE7 = {"Toys": {"HR@5": .0103, "HR@10": .0215, "NDCG@5": .0079, "NDCG@10": .0114},
                "Yelp": {"HR@5": .0300, "HR@10": .0329, "NDCG@5": .0248, "NDCG@10": .0258}}
ROWS = [("ours", "ours (zero-shot)"), ("ours_no_text_prior", "ours, no text prior"),
        ("ours_beams_only", "ours, beams only"),
        ("text_similarity", "text similarity"), ("recent_then_text", "recent, then text"), ("random", "random"),
        ("popularity", "popularity [in-domain]"), ("markov", "Markov [in-domain]"),
        ("paper_table7", "paper Table 7")]


@dataclass
class TransferConfig:
    pretrain: list[Path] = field(default_factory=lambda: list(PRETRAIN))
    heldout: list[Path] = field(default_factory=lambda: list(HELDOUT))
    out: Path = Path("runs/transfer")
    users_per_domain: int = 3000
    epochs: int = 5
    text_prior_grid: list[float] = field(default_factory=lambda: list(WEIGHT_GRID))
    train_config: Path | None = None
    device: str = "auto"
    # the foundation model: the standard recipe on the corpus (the recommender from the warm-started generator)
    # (a warm start of fixed steps: the corpus is large enough that the minimum of passes would take an hour)
    standard: StandardConfig = field(default_factory=lambda: StandardConfig(
        init_from_generator=True, with_sasrec=False, warmstart=WarmStartConfig(steps=6000, min_epochs=0),
        ids=IDJobConfig(actors=0)))
    # the zero-shot evaluation of every held-out dataset (max_users: 0 = all of its users)
    zeroshot: ZeroShotConfig = field(default_factory=lambda: ZeroShotConfig(actors=1))

    FILLED: ClassVar[dict] = {"standard": ("data", "out", "domain", "users", "heldout", "procs", "device",
                                           "with_sasrec", "train_config"),
                              "zeroshot": ("generator", "recommender", "data", "out", "repeat_bias", "text_prior",
                                           "device")}

    def check(self) -> None:
        if not self.pretrain or not self.heldout:
            raise ValueError("give --pretrain and --heldout datasets")
        if self.users_per_domain < 1 or self.epochs < 1:
            raise ValueError("users_per_domain and epochs must be >= 1")


HELP = {"pretrain": "pretraining dataset folders (shared layout)",
        "heldout": "held-out dataset folders, evaluated zero-shot (never trained or tuned on)",
        "out": "benchmark folder", "users_per_domain": "pretraining users per domain (seeded sample; the corpus cap)",
        "epochs": "recommender passes over the corpus shards (each validated on the pretraining domains)",
        "train_config": "recommender recipe (pretrain.train fields); default pretrain/recipes/quality_cpu.yaml "
                        "with this benchmark's epochs",
        "text_prior_grid": "weights of the text-similarity prior tried on the pretraining validation (the best, "
                           "or off, is used zero-shot; empty: no prior)",
        "device": "auto, cpu or cuda",
        **nested_help("standard", {k: v for k, v in STANDARD_HELP.items() if k != "train_config"}),
        **nested_help("zeroshot", ZEROSHOT_HELP)}


def build_corpus_step(cfg: TransferConfig) -> Path:
    """The pretraining corpus, remade only when a dataset's content or the cap changes."""
    from catalog.corpus import CorpusConfig, build_corpus
    from infra.fingerprint import content_digest, settings_digest, step_done, write_stamp

    out = cfg.out / "corpus"
    corpus = CorpusConfig(data=list(cfg.pretrain), out=out, heldout=list(cfg.heldout),
                          max_users_per_domain=cfg.users_per_domain, seed=cfg.standard.seed)
    inputs = {"data": settings_digest([content_digest(d) for d in [*cfg.pretrain, *cfg.heldout]]),
              "settings": settings_digest([cfg.users_per_domain, cfg.standard.seed])}
    if not step_done("corpus", out, inputs, (out / "stats.json").exists()):
        build_corpus(corpus)
        write_stamp(out, inputs)
    return out


def foundation(cfg: TransferConfig, device: str) -> dict:
    """The standard recipe on the corpus; returns its standard.json (in-domain figures of the pretraining data)."""
    from cluster.standard import run_standard
    from infra.config import load_config
    from pretrain.config import CPU_RECIPE

    corpus = build_corpus_step(cfg)
    std = replace(cfg.standard, data=corpus, out=cfg.out / "foundation", domain="corpus", users=0,
                  heldout=list(cfg.heldout), procs=1, device=device, with_sasrec=False)
    recipe = load_config(TrainConfig, cfg.train_config or CPU_RECIPE)
    # step-bound (no time budget): the same seed takes the same steps on any machine; the corpus's own test (an
    # in-domain figure, not this benchmark's) on its first 2,000 users unless the recipe sets another number
    return run_standard(std, replace(recipe, engine="torch", zero_stage=0, epochs=cfg.epochs, time_budget_s=0.0,
                                     test_max_users=recipe.test_max_users or 2000))


def zero_shot(cfg: TransferConfig, device: str, found: dict, prior: dict) -> dict:
    """``idgenrec zeroshot`` with the foundation model on every held-out dataset, the repeat bias and the text
    prior chosen on the pretraining validation; the zero-shot folder is named by the ID setting it used."""
    from cluster.zeroshot import run_zeroshot
    from eval.runs import TrainingRun

    run = cfg.out / "foundation"
    chosen = (found["ours"].get("repeat_bias") or {}).get("chosen")
    folder = cfg.out / ("zeroshot-copy" if cfg.zeroshot.copy_source else "zeroshot")
    zs = replace(cfg.zeroshot, generator=run / "generator", recommender=TrainingRun(run / "recommender").best,
                 data=list(cfg.heldout), out=folder, repeat_bias=chosen, text_prior=prior.get("chosen"),
                 device=device)
    return run_zeroshot(zs)


def dataset_rows(name: str, z: dict) -> dict:
    """One held-out dataset's methods, each with its ``test`` metrics on the same users."""
    methods = {"ours": {"test": {k: z[k] for k in ("users", *METRICS)}, "repeat_bias": z.get("repeat_bias"),
                        "text_prior": z.get("text_prior")}}
    for key, method in (("without_text_prior", "ours_no_text_prior"), ("without_repeat_bias", "ours_beams_only")):
        if z.get(key):
            methods[method] = {"test": z[key]}
    for method, m in (z.get("baselines") or {}).items():
        methods[method] = {"test": {k: m[k] for k in ("users", *METRICS)}, "in_domain": m["in_domain"]}
    if name in PAPER_TABLE7:
        methods["paper_table7"] = {"test": PAPER_TABLE7[name], "note": "the paper's figures, from its own corpus"}
    return methods


def table(results: dict) -> str:
    rows = [f"{'dataset':12s} {'method':24s} " + " ".join(f"{m:>8s}" for m in METRICS) + "   users"]
    for name, r in results.get("heldout", {}).items():
        for key, label in ROWS:
            if key in r["methods"]:
                m = r["methods"][key]["test"]
                if key == "ours" and r["methods"]["ours"].get("text_prior") is not None:
                    label = f"ours + text prior {r['methods']['ours']['text_prior']:g}"
                rows.append(f"{name:12s} {label:24s} " + metric_cells(m) + f"  {m.get('users', '')}")
        q = r.get("id_quality") or {}
        if q:
            rows.append(f"{name:12s} IDs: {q['id_words_in_text']:.2f} of an ID's words in its item's text, "
                        f"{q['ids_all_words_in_text']:.0%} entirely, {q['words_per_id']:.1f} words per ID")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from infra.device import resolve_device

    cfg = bench_config(TransferConfig, HELP, __doc__, argv)
    device = str(resolve_device(cfg.device))
    run = recorded_run(cfg.out, "transfer.json", device)
    run.phase("foundation", lambda: foundation(cfg, device))
    if "foundation" in run.results:
        run.phase("text_prior", lambda: text_prior_on_validation(cfg.out / "foundation", run.results["foundation"],
                                                                  cfg.text_prior_grid))
    if "text_prior" in run.results:
        run.phase("zeroshot", lambda: zero_shot(cfg, device, run.results["foundation"], run.results["text_prior"]))
    run.results["heldout"] = {
        name: {"users": z["users"], "items": z.get("items"), "id_quality": z.get("id_quality"),
               "methods": dataset_rows(name, z)} for name, z in (run.results.get("zeroshot") or {}).items()}
    from infra.config import config_to_dict
    run.results["config"] = config_to_dict(cfg)
    run.save()
    text = table(run.results)
    (cfg.out / "table.txt").write_text(text + "\n")
    print("\n" + text)
    return 1 if run.results["errors"] else 0


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    sys.exit(main())
