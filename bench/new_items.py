"""New items without retraining: hold out a seeded random share of a dataset's items, train on the rest, add the
held-out items with ``idgenrec add-items``, and rank for the users whose test target is a new item.

1. ``out/train_data/``: the dataset without the held-out items (removed from every sequence and from the item
   file), and ``out/new_items.jsonl.gz``: the held-out items' records.
2. ``out/train/``: the standard recipe on the training data, sized as ``bench/quality.py`` sizes it (its function):
   tokenizer, generator warm start and recommender never see a held-out item's text or interaction.
3. ``add-items`` onto a copy of that run's ID table and catalog (``out/added/``).
4. Test users: those of the full dataset whose last item is a held-out item; history = the items before it (the last
   ``max_history``; held-out items in it have IDs now too). All methods rank over every item, old and new:
   ours (the best-on-validation recommender, trie of the extended table), popularity (training counts: a new item
   has none), and text similarity (TF-IDF cosine to the user's last 3 items, history excluded); and ours with the
   text prior (``recommender.text_prior``) and the ID prior correction (``recommender.id_prior``) chosen on the
   training data's validation, as its own row ("ours + levers"); and that ranking with the new-item mode
   (``recommender.modes``: the new items ranked among themselves by text similarity, mixed in by the new items'
   share of the catalog and each rank's worth on the training data's validation, a seeded share of its items
   treated as new), as its own row ("+ new-item mode").
5. The other test users (target a known item; histories may hold new items, all items ranked): the same
   ranking with and without the new-item mode, to show what the mode costs them.

Writes ``out/new_items.json`` (metrics per method for both groups, users, items, the share of new items in each
top-10) and prints a table.

    python bench/new_items.py [--data ../shared/data/Scientific] [--fraction 0.1] [--out runs/new_items]
"""
from __future__ import annotations

import json
import logging
import random
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from typing import ClassVar
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (SHARED_DATA, bench_config, metric_cells,  # noqa: E402  (puts the repo on the path)
                    text_prior_on_validation)

import quality  # noqa: E402  (bench/quality.py: the same recipe)
from catalog.similarity import TextSimilarity  # noqa: E402
from eval.metrics import METRICS  # noqa: E402
from eval.new_item_mode import new_mode_worth, text_among  # noqa: E402
from idgen.warmstart import WarmStartConfig  # noqa: E402
from infra.config import nested_help  # noqa: E402
from recommender.id_prior import BETA_GRID  # noqa: E402
from recommender.modes import NEW_MODE_DEPTH, merge_new_item_mode, new_item_share  # noqa: E402
from recommender.text_prior import WEIGHT_GRID  # noqa: E402
log = logging.getLogger("idgenrec.bench")


@dataclass
class NewItemsConfig:
    data: Path = SHARED_DATA / "Scientific"
    out: Path = Path("runs/new_items")
    fraction: float = 0.1
    text_prior_grid: list[float] = field(default_factory=lambda: list(WEIGHT_GRID))
    id_prior_grid: list[float] = field(default_factory=lambda: list(BETA_GRID))
    new_item_mode: bool = True
    # the quality benchmark's recipe with a shorter warm start and a 10-epoch cap (its first seed also draws the
    # held-out items)
    quality: quality.QualityConfig = field(default_factory=lambda: quality.QualityConfig(
        epochs=10, standard=replace(quality.QualityConfig().standard,
                                             warmstart=WarmStartConfig(steps=1500))))

    FILLED: ClassVar[dict] = {"quality": ("data", "names", "users", "out")}

    def check(self) -> None:
        if not 0 < self.fraction < 1:
            raise ValueError("fraction must be in (0, 1)")


HELP = {"data": "dataset folder (shared layout)", "out": "benchmark folder",
        "fraction": "share of the items held out as new (seeded random draw)",
        "text_prior_grid": "weights of the text-similarity prior tried on the training data's validation (the best, "
                           "or off, ranks the 'ours + levers' row; empty: none)",
        "id_prior_grid": "betas of the ID prior correction (recommender.id_prior) tried on the same validation, the "
                         "text prior's weight chosen again at each (empty: none)",
        "new_item_mode": "also rank with the new-item mode (recommender.modes): the new items mixed into the "
                         "'ours + levers' ranking (needs the text prior grid: its validation gives each rank's worth)",
        **nested_help("quality", quality.HELP)}


def split_dataset(cfg: NewItemsConfig) -> tuple[Path, Path, set[str]]:
    """(training data folder, new-items file, held-out item ids), written once."""
    from catalog.sources import read_items, read_sequences, write_items, write_shared
    from infra.atomic import atomic_dir, atomic_path
    from infra.errors import Problems

    data, out = Path(cfg.data), Path(cfg.out)
    items_path = data / "items.jsonl.gz" if (data / "items.jsonl.gz").exists() else data / "items.jsonl"
    records = read_items(items_path, Problems())
    seqs, _ = read_sequences(data / "user_sequence.txt", Problems())
    used = sorted({i for _, s in seqs for i in s if i in records})
    held = set(random.Random(cfg.quality.seeds[0]).sample(used, round(cfg.fraction * len(used))))
    train_dir, new_file = out / "train_data", out / "new_items.jsonl.gz"
    if not (train_dir / "user_sequence.txt").exists():
        with atomic_dir(train_dir) as tmp:
            write_shared(tmp, [(u, [i for i in s if i not in held]) for u, s in seqs],
                         {k: v for k, v in records.items() if k not in held})
        with atomic_path(new_file) as tmp:
            write_items(tmp, {k: records[k] for k in used if k in held})
    return train_dir, new_file, held


def add_new_items(run: Path, new_file: Path, out: Path, device: str) -> dict:
    """``add-items`` onto copies of the trained run's ID table and catalog (the run itself stays as trained)."""
    from cluster.add_items import AddItemsConfig, run_add_items

    if not (out / "done.json").exists():
        for name in ("ids", "catalog"):
            if (out / name).exists():
                shutil.rmtree(out / name)
            shutil.copytree(run / name, out / name, ignore=shutil.ignore_patterns("work"))
        r = run_add_items(AddItemsConfig(ids=out / "ids", items=new_file, catalog=out / "catalog", device=device))
        (out / "done.json").write_text(json.dumps(r))
    return json.loads((out / "done.json").read_text())


def ours_rankings(model: Path, ids: Path, histories: list[list[str]], cfg: NewItemsConfig, train: dict,
                  device: str, candidates: Path | None = None, **prior) -> list[list[str]]:
    """Top-10 by ``recommend``'s ranker, decoded as the trainer's validation decodes (beams, length penalty);
    ``prior``: ``text_prior`` and ``catalog`` for the text prior."""
    from cluster.recommend import Ranker, RecommendConfig

    ranker = Ranker(RecommendConfig(model=model, ids=ids, k=10, beams=train["eval_beams"],
                                    max_history=cfg.quality.standard.max_history,
                                    length_penalty=train["eval_length_penalty"], candidates=candidates, **prior),
                    device)
    lines = []
    for start in range(0, len(histories), 64):
        lines += ranker.rank([(str(n), h) for n, h in enumerate(histories[start:start + 64], start)])
    return [json.loads(line)["items"] for line in lines]


def new_only_candidates(out: Path, held: set[str]) -> Path:
    """The new items as a ``recommend --candidates`` file."""
    path = out / "new_items.txt"
    path.write_text("".join(f"{i}\n" for i in sorted(held)))
    return path


@dataclass
class Rankers:
    """What ranks a group of test users: the trained run after ``add-items`` (its table and catalog), the levers
    chosen on the training data's validation and the new-item mode (its worth per rank and ``p_new``; None: no
    mode)."""

    cfg: NewItemsConfig
    trained: dict
    device: str
    held: set[str]
    prior: dict
    worth: dict | None
    similarity: TextSimilarity  # the extended catalog's TF-IDF, built once for every ranking of the run

    def ours(self, histories: list[list[str]], levers: bool = False, **extra) -> list[list[str]]:
        from eval.runs import TrainingRun

        out = Path(self.cfg.out)
        chosen = dict(text_prior=self.prior["chosen"], id_prior=self.prior.get("id_prior"),
                      catalog=out / "added" / "catalog") if levers else {}
        return ours_rankings(TrainingRun(out / "train" / "recommender").best, out / "added" / "ids", histories,
                             self.cfg, self.trained["train_config"], self.device, **chosen, **extra)

    @property
    def levers(self) -> bool:
        return self.prior["chosen"] is not None or self.prior.get("id_prior") is not None

    def methods(self, histories: list[list[str]], catalog, plain: bool = True) -> dict[str, list[list[str]]]:
        """Top 10 per user by each method (``plain``: ours without levers too, where levers are chosen)."""
        from catalog.store import read_catalog
        from eval.baselines import popularity_ranking

        train = read_catalog(Path(self.cfg.out) / "train" / "catalog")
        ranked = {"ours": self.ours(histories)} if plain or not self.levers else {}
        ranked["popularity"] = [popularity_ranking(train.sequences, "test", 10)] * len(histories)
        ranked["text similarity"] = text_among(catalog, histories, None, 10, self.similarity)
        known = "ours"
        if self.levers:
            known, ranked["ours + levers"] = "ours + levers", self.ours(histories, levers=True)
        if self.worth is not None and self.prior.get("explore_rates"):
            among = text_among(catalog, histories, self.held, NEW_MODE_DEPTH, self.similarity)
            ranked[f"{known} + new-item mode"] = [
                [i for i, _ in merge_new_item_mode(k, n, self.worth["p_new"], self.prior["explore_rates"],
                                                   self.worth["rates"])]
                for k, n in zip(ranked[known], among)]
        return ranked


def scored(ranked: dict, targets: list[str], held: set[str]) -> dict:
    """Each method's metrics and the share of new items in its top-10 lists."""
    from eval.metrics import leave_one_out_metrics

    return {"methods": {m: leave_one_out_metrics(r, targets, (5, 10)) for m, r in ranked.items()},
            "new_share_of_top10": {m: sum(i in held for top in r for i in top[:10]) /
                                   max(1, sum(len(top[:10]) for top in r)) for m, r in ranked.items()},
            "users": len(targets)}


def run(cfg: NewItemsConfig) -> dict:
    from catalog.prepare import PrepareConfig, prepare
    from catalog.split import samples
    from catalog.store import read_catalog
    from infra.atomic import write_json
    from infra.device import resolve_device

    t0, out, device = time.time(), Path(cfg.out), str(resolve_device(cfg.quality.device))
    train_dir, new_file, held = split_dataset(cfg)
    trained = quality.one_dataset(replace(cfg.quality, out=out), train_dir, "train", 0, device, sasrec=False,
                                  seed=cfg.quality.seeds[0])
    added = add_new_items(out / "train", new_file, out / "added", device)
    full_dir = out / "full_catalog"
    if not (full_dir / "stats.json").exists():
        prepare(PrepareConfig(data=Path(cfg.data), out=full_dir))
    tests = list(samples(read_catalog(full_dir).sequences, "test", cfg.quality.standard.max_history))
    cases = [s for s in tests if s.target in held]
    others = [s for s in tests if s.target not in held]
    histories, targets = [list(s.history) for s in cases], [s.target for s in cases]
    log.info("%d test users whose target is one of the %d new items; %d others", len(cases), len(held), len(others))
    catalog = read_catalog(out / "added" / "catalog")
    # the training data's validation (its targets are all known items: nothing there rewards ranking new ones)
    prior = text_prior_on_validation(out / "train", trained, cfg.text_prior_grid, cfg.id_prior_grid)
    worth = (new_mode_worth(read_catalog(out / "train" / "catalog"), cfg.fraction, cfg.quality.seeds[0],
                            cfg.quality.standard.max_history)
             | {"p_new": new_item_share(len(held), len(catalog.item_ids))} if cfg.new_item_mode else None)
    rankers = Rankers(cfg, trained, device, held, prior, worth, TextSimilarity(catalog.texts))
    # Among the new items only (a trie of their IDs; text similarity among them): does the model order the new
    # items sensibly, once it is made to choose among them?
    among_new = {"ours": rankers.ours(histories, candidates=new_only_candidates(out, held)),
                 "text similarity": text_among(catalog, histories, held, 10, rankers.similarity)}
    new_targets = scored(rankers.methods(histories, catalog), targets, held)
    result = {"dataset": Path(cfg.data).name, "held_out_items": len(held), "items": len(catalog.item_ids),
              **new_targets, "add_items": added, "trained": {k: trained[k] for k in ("ours", "seconds")},
              "among_new_items": scored(among_new, targets, held)["methods"],
              "other_users": scored(rankers.methods([list(s.history) for s in others], catalog, plain=False),
                                    [s.target for s in others], held),
              "text_prior": prior, "new_item_mode": worth,
              "config": {k: str(v) for k, v in vars(cfg).items()}, "wall_s": round(time.time() - t0, 1)}
    write_json(out / "new_items.json", result)
    return result


def method_rows(group: dict) -> list[str]:
    return [f"{method:30s} " + metric_cells(m) + f"  {group['new_share_of_top10'][method]:.1%} of the top-10 new"
            for method, m in group["methods"].items()]


def table(r: dict) -> str:
    header = f"{'method':30s} " + " ".join(f"{m:>8s}" for m in METRICS)
    rows = [f"{r['dataset']}: {r['users']} test users whose target is one of {r['held_out_items']} new items "
            f"(of {r['items']}); ranked over all items", header, *method_rows(r)]
    chosen, mode = r["text_prior"], r.get("new_item_mode")
    rows.append(f"chosen on the training data's validation: text prior {chosen['chosen']}, ID prior "
                f"{chosen.get('id_prior')} (ours + levers)")
    if mode:
        rows.append(f"new-item mode: P(new) {mode['p_new']:.3f} (the new items' share of the catalog); its worth per "
                    f"rank from {mode['users']} validation users whose target is one of {mode['pseudo_new_items']} "
                    f"items treated as new (rank 1: {mode['rates'][0]:.3f})")
    rows.append("ranked among the new items only:")
    rows += [f"{method:30s} " + metric_cells(m) for method, m in r["among_new_items"].items()]
    if "other_users" in r:
        rows += [f"the other {r['other_users']['users']} test users (target a known item; all items ranked):", header,
                 *method_rows(r["other_users"])]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    cfg = bench_config(NewItemsConfig, HELP, __doc__, argv)
    result = run(cfg)
    text = table(result)
    (Path(cfg.out) / "table.txt").write_text(text + "\n")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.INFO)
    sys.exit(main())
