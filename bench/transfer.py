"""Transfer benchmark: a foundation model trained on some domains, evaluated zero-shot on datasets it never saw,
beside the baselines a user of zero-shot recommendation would run, on the same users, in one run.

    corpus (idgenrec corpus: --pretrain datasets, users capped per domain; --validation and --heldout refused
         as a leak)
      -> the standard recipe on the corpus (tokenizer, generator warm start, IDs, shards, the recommender trained
         for --epochs, one export per epoch)
      -> selection on a *validation domain* (--validation, never trained on, never a held-out dataset): every
         epoch's export zero-shot on its valid split, the repeat bias and the text prior's weight
         (recommender.text_prior) chosen there; the epoch with the best NDCG@10 and its settings are kept.
         The pretraining domains' own validation does not predict transfer (docs/ablations.md); without
         --validation the old rule applies: the best epoch and settings on the pretraining validation
         The chosen epoch's hit rate at each rank on the validation domain is kept for the repeat mode
      -> idgenrec zeroshot on every --heldout dataset (IDs for its unseen items, test, no training or tuning on it;
         ours reported with each lever and without it). The repeat mode (recommender.repeat_mode) reads how often
         and how far back the dataset's users come back to an item from their histories alone (no targets), and
         ranks each user's history items against those rank rates; histories that never repeat leave ours as is
      -> beside ours, on the same users: random (analytic), text similarity (TF-IDF of item text to the user's
         last 3 items), recent items then text similarity (zero-shot peers: no interaction of the dataset beyond
         the user's own history); popularity and the Markov chain, labelled in-domain references (counted on the
         dataset's own training interactions); the paper's Table 7 row where it has one.

Every step is cached under ``--out`` and keyed on the content of its inputs: a rerun continues where it stopped.
Writes ``transfer.json`` (per held-out dataset: users, items, the ID quality of its catalog, and per method a
``test`` dict with the four metrics; plus configs and seconds) and ``table.txt``; the table is printed last.
Defaults: Sports, Office_Industrial and Scientific (3,000 users each), Beauty the validation domain -> all of Toys
and all of Yelp, sized for about two hours on 2 cores (``--zeroshot.max-users`` scores the first N users of each for a
quicker look). ``--heldout`` takes any dataset folder in the shared layout.

    python bench/transfer.py [--pretrain DIR ...] [--heldout DIR ...] [--out runs/transfer]
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (SHARED_DATA, bench_config, metric_cells, recorded_run,  # noqa: E402  (puts the repo on the path)
                    repeat_bias_chosen, text_prior_on_validation)

from cluster.idjob import IDJobConfig  # noqa: E402
from cluster.standard import HELP as STANDARD_HELP  # noqa: E402
from cluster.standard import StandardConfig  # noqa: E402
from cluster.zeroshot import HELP as ZEROSHOT_HELP  # noqa: E402
from cluster.zeroshot import ZeroShotConfig  # noqa: E402
from eval.metrics import METRICS  # noqa: E402
from eval.published import published  # noqa: E402
from idgen.warmstart import WarmStartConfig  # noqa: E402
from infra.config import nested_help  # noqa: E402
from pretrain.config import TrainConfig  # noqa: E402
from recommender.id_prior import BETA_GRID  # noqa: E402
from recommender.text_prior import WEIGHT_GRID  # noqa: E402

log = logging.getLogger("idgenrec.bench")

# the validation domain: Amazon product text like Toys (titles, brands, categories); Scientific cannot be one
# beside Office_Industrial (one source category, which the corpus refuses as a leak)
PRETRAIN = [SHARED_DATA / n for n in ("Sports", "Office_Industrial", "Scientific")]
VALIDATION = SHARED_DATA / "Beauty"
HELDOUT = [SHARED_DATA / n for n in ("Toys", "Yelp")]
ROWS = [("ours", "ours (zero-shot)"), ("ours_no_repeat_mode", "ours, no repeat mode"),
        ("ours_no_id_prior", "ours, no ID prior"),
        ("ours_no_text_prior", "ours, no text prior"),
        ("ours_beams_only", "ours, beams only"),
        ("text_similarity", "text similarity"), ("recent_then_text", "recent, then text"), ("random", "random"),
        ("popularity", "popularity [in-domain]"), ("markov", "Markov [in-domain]"),
        ("paper_table7", "paper Table 7")]


@dataclass
class TransferConfig:
    pretrain: list[Path] = field(default_factory=lambda: list(PRETRAIN))
    heldout: list[Path] = field(default_factory=lambda: list(HELDOUT))
    validation: Path | None = VALIDATION
    validation_users: int = 2000
    out: Path = Path("runs/transfer")
    users_per_domain: int = 3000
    epochs: int = 5
    text_prior_grid: list[float] = field(default_factory=lambda: list(WEIGHT_GRID))
    id_prior_grid: list[float] = field(default_factory=lambda: list(BETA_GRID))
    repeat_mode: bool = True
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
                              "zeroshot": ("generator", "recommender", "data", "out", "split", "repeat_bias",
                                           "text_prior", "repeat_bias_grid", "text_prior_grid", "id_prior",
                                           "id_prior_grid", "explore_rates", "device")}

    def check(self) -> None:
        if self.validation is not None and str(self.validation).lower() in (".", "none"):
            self.validation = None  # ``--validation none``: select on the pretraining domains' validation
        if not self.pretrain or not self.heldout:
            raise ValueError("give --pretrain and --heldout datasets")
        if self.validation and Path(self.validation).resolve().name in {Path(d).resolve().name
                                                                         for d in [*self.pretrain, *self.heldout]}:
            raise ValueError(f"the validation domain {self.validation} must be neither pretrained on nor held out")
        if self.users_per_domain < 1 or self.epochs < 1:
            raise ValueError("users_per_domain and epochs must be >= 1")


HELP = {"pretrain": "pretraining dataset folders (shared layout)",
        "heldout": "held-out dataset folders, evaluated zero-shot (never trained or tuned on)",
        "validation": "validation domain (a dataset folder, neither pretrained on nor held out): each epoch's "
                      "export is scored zero-shot on its valid split, which chooses the epoch, repeat bias and text "
                      "prior; 'none': choose on the pretraining domains' validation",
        "validation_users": "validation-domain users scored per epoch (the first N of its valid split; 0 = all)",
        "out": "benchmark folder", "users_per_domain": "pretraining users per domain (seeded sample; the corpus cap)",
        "epochs": "recommender passes over the corpus shards (each exported; the validation domain picks one)",
        "train_config": "recommender recipe (pretrain.train fields); default pretrain/recipes/quality_cpu.yaml "
                        "with this benchmark's epochs",
        "text_prior_grid": "weights of the text-similarity prior tried on the validation (the best, or off, is used "
                           "zero-shot; empty: no prior)",
        "id_prior_grid": "betas of the ID prior correction (recommender.id_prior) tried on the validation domain "
                         "(the best, or off, is used zero-shot; empty: none; not used without a validation domain)",
        "repeat_mode": "zero-shot, rank each user's history items by the repeat mode (recommender.repeat_mode): "
                       "a repeat probability read from the held-out dataset's own histories, against the hit rate "
                       "of each rank of ours on the validation domain (needs --validation)",
        "device": "auto, cpu or cuda",
        **nested_help("standard", {k: v for k, v in STANDARD_HELP.items() if k != "train_config"}),
        **nested_help("zeroshot", ZEROSHOT_HELP)}


def unseen(cfg: TransferConfig) -> list[Path]:
    """The datasets no model of the benchmark may train on: the held-out ones and the validation domain."""
    return [*cfg.heldout, *([cfg.validation] if cfg.validation else [])]


def build_corpus_step(cfg: TransferConfig) -> Path:
    """The pretraining corpus, remade only when a dataset's content or the cap changes."""
    from catalog.corpus import CorpusConfig, build_corpus
    from infra.fingerprint import content_digest, settings_digest, step_done, write_stamp

    out = cfg.out / "corpus"
    corpus = CorpusConfig(data=list(cfg.pretrain), out=out, heldout=unseen(cfg),
                          max_users_per_domain=cfg.users_per_domain, seed=cfg.standard.seed)
    inputs = {"data": settings_digest([content_digest(d) for d in [*cfg.pretrain, *unseen(cfg)]]),
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
                  heldout=unseen(cfg), procs=1, device=device, with_sasrec=False)
    recipe = load_config(TrainConfig, cfg.train_config or CPU_RECIPE)
    # step-bound (no time budget): the same seed takes the same steps on any machine; the corpus's own test (an
    # in-domain figure, not this benchmark's) on its first 2,000 users unless the recipe sets another number
    return run_standard(std, replace(recipe, engine="torch", zero_stage=0, epochs=cfg.epochs, time_budget_s=0.0,
                                     test_max_users=recipe.test_max_users or 2000))


def on_pretraining_validation(cfg: TransferConfig, found: dict) -> dict:
    """Without a validation domain: the recommender the corpus validation selected, its repeat bias, and the text
    prior's weight chosen on the same validation."""
    from eval.runs import TrainingRun

    run = cfg.out / "foundation"
    prior = text_prior_on_validation(run, found, cfg.text_prior_grid)
    return {"recommender": str(TrainingRun(run / "recommender").best), "on": "pretraining validation",
            "repeat_bias": repeat_bias_chosen(found), "text_prior": prior["chosen"],
            "text_prior_valid_ndcg10": prior.get("valid_ndcg10")}


def on_validation_domain(cfg: TransferConfig, device: str, found: dict) -> dict:
    """Every epoch's export zero-shot on the validation domain's valid split (repeat bias and text prior chosen
    there); the epoch with the best NDCG@10 (the earlier on a tie) and its settings. One folder for all epochs (the
    domain's IDs are made once); each epoch's figures kept in ``validation/epochs.json`` on the content of its
    export and settings, so a rerun continues."""
    from cluster.zeroshot import run_zeroshot
    from eval.runs import TrainingRun
    from infra.atomic import write_json
    from infra.config import build_config
    from infra.fingerprint import content_digest, settings_digest

    run, name = TrainingRun(cfg.out / "foundation" / "recommender"), cfg.validation.resolve().name
    grid = build_config(TrainConfig, found["train_config"]).eval_repeat_bias_grid
    cache = cfg.out / "validation" / "epochs.json"
    done = json.loads(cache.read_text()) if cache.is_file() else {}
    epochs = {}
    for h in run.summary()["history"]:
        zs = replace(cfg.zeroshot, generator=cfg.out / "foundation" / "generator", recommender=run.export(h["epoch"]),
                     data=[cfg.validation], out=cfg.out / "validation", split="valid",
                     max_users=cfg.validation_users, repeat_bias_grid=grid, text_prior_grid=cfg.text_prior_grid,
                     id_prior_grid=cfg.id_prior_grid, device=device)
        key = settings_digest([content_digest(zs.recommender), content_digest(zs.generator),
                               content_digest(cfg.validation), [zs.groups, zs.beams, zs.max_users,
                                                                zs.copy_source, grid, zs.text_prior_grid,
                                                                zs.id_prior_grid]])
        cached = done.get(str(h["epoch"]), {})
        if cached.get("key") != key or "explore_rates" not in cached["figures"]:  # (figures before the repeat mode)
            v = run_zeroshot(zs)[name]
            done[str(h["epoch"])] = {"key": key, "figures": {k: v.get(k) for k in (
                "users", *METRICS, "repeat_bias", "text_prior", "without_text_prior", "text_prior_ndcg10", "id_prior",
                "without_id_prior", "id_prior_ndcg10", "explore_rates")}}
            write_json(cache, done)
        v = epochs[h["epoch"]] = done[str(h["epoch"])]["figures"]
        log.info("validation domain %s, epoch %d: NDCG@10 %.4f (repeat bias %s, text prior %s, ID prior %s)", name,
                 h["epoch"], v["NDCG@10"], v.get("repeat_bias"), v.get("text_prior"), v.get("id_prior"))
    best = max(epochs, key=lambda e: (epochs[e]["NDCG@10"], -e))
    return {"recommender": str(run.export(best)), "on": f"{name} (validation domain)", "epoch": best,
            "repeat_bias": epochs[best]["repeat_bias"], "text_prior": epochs[best]["text_prior"],
            "id_prior": epochs[best].get("id_prior"), "explore_rates": epochs[best]["explore_rates"],
            "validation_domain": {"dataset": name, "epochs": epochs}}


def zero_shot(cfg: TransferConfig, device: str, chosen: dict) -> dict:
    """``idgenrec zeroshot`` with the chosen recommender, repeat bias and text prior on every held-out dataset; the
    zero-shot folder is named by the ID setting it used."""
    from cluster.zeroshot import run_zeroshot

    folder = cfg.out / ("zeroshot-copy" if cfg.zeroshot.copy_source else "zeroshot")
    zs = replace(cfg.zeroshot, generator=cfg.out / "foundation" / "generator", recommender=Path(chosen["recommender"]),
                 data=list(cfg.heldout), out=folder, repeat_bias=chosen["repeat_bias"],
                 text_prior=chosen["text_prior"], id_prior=chosen.get("id_prior"),
                 explore_rates=(chosen.get("explore_rates") or []) if cfg.repeat_mode else [], device=device)
    return run_zeroshot(zs)


def dataset_rows(name: str, z: dict) -> dict:
    """One held-out dataset's methods, each with its ``test`` metrics on the same users."""
    methods = {"ours": {"test": {k: z[k] for k in ("users", *METRICS)}, "repeat_bias": z.get("repeat_bias"),
                        "text_prior": z.get("text_prior"), "id_prior": z.get("id_prior"),
                        "repeat_mode": z.get("repeat_mode")}}
    for key, method in (("without_repeat_mode", "ours_no_repeat_mode"), ("without_id_prior", "ours_no_id_prior"), ("without_text_prior", "ours_no_text_prior"),
                        ("without_repeat_bias", "ours_beams_only")):
        if z.get(key):
            methods[method] = {"test": z[key]}
    for method, m in (z.get("baselines") or {}).items():
        methods[method] = {"test": {k: m[k] for k in ("users", *METRICS)}, "in_domain": m["in_domain"]}
    for figures in published(name, "zero-shot", z["users"]).values():  # the paper's Table 7 (all users only)
        methods["paper_table7"] = {"test": figures, "note": "the paper's figures, from its own corpus"}
    return methods


def ours_label(ours: dict) -> str:
    """Ours named by the levers it ran with."""
    levers = [f" + {name} {ours[key]:g}" for key, name in (("text_prior", "text prior"), ("id_prior", "ID prior"))
              if ours.get(key) is not None]
    if (ours.get("repeat_mode") or {}).get("rate"):
        levers.append(" + repeat mode")
    return "ours" + "".join(levers)


def selection_line(chosen: dict) -> str:
    """How the zero-shot settings were chosen, in one line of the table."""
    epoch = f"epoch {chosen['epoch']}, " if "epoch" in chosen else ""
    mode = ", its hit rate per rank for the repeat mode" if chosen.get("explore_rates") else ""
    return (f"chosen on {chosen['on']}: {epoch}repeat bias {chosen['repeat_bias']}, "
            f"text prior {chosen['text_prior']}, ID prior {chosen.get('id_prior')}{mode}")


def table(results: dict) -> str:
    rows = [f"{'dataset':12s} {'method':52s} " + " ".join(f"{m:>8s}" for m in METRICS) + "   users"]
    if results.get("selection"):
        rows.insert(0, selection_line(results["selection"]))
    for name, r in results.get("heldout", {}).items():
        for key, label in ROWS:
            if key in r["methods"]:
                m = r["methods"][key]["test"]
                if key == "ours":
                    label = ours_label(r["methods"]["ours"])
                elif key.startswith("ours_no_") and key != "ours_no_repeat_mode" and "ours_no_repeat_mode" in \
                        r["methods"]:
                    label += ", no repeat mode"  # each lever's ablation is taken before the repeat mode
                rows.append(f"{name:12s} {label:52s} " + metric_cells(m) + f"  {m.get('users', '')}")
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
        found = run.results["foundation"]
        run.phase("selection", lambda: on_validation_domain(cfg, device, found) if cfg.validation
                  else on_pretraining_validation(cfg, found))
    if "selection" in run.results:
        run.phase("zeroshot", lambda: zero_shot(cfg, device, run.results["selection"]))
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
