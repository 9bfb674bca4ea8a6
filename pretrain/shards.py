"""``idgenrec shards``: training samples as WebDataset tar shards, with a manifest.

Each sample is already templated: ``src.txt`` (the prompt, history as item IDs, template drawn per sample with the
seed) and ``tgt.txt`` (the target item's ID), plus ``meta.json`` (domain, user, position, template). Samples are
shuffled with the seed before writing, so reading the shards in order is a random order that every rank and every
resumed run sees identically. The folder is written atomically; ``manifest.json`` counts samples per domain and per
shard and records a hash of the configuration.
"""
from __future__ import annotations

import hashlib
import io
import json
import random
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from catalog.id_table import ITEM_TABLE, ids_hash, item_id_texts, table_fingerprint, user_id_texts
from catalog.split import MAX_HISTORY, samples
from catalog.store import read_catalog
from infra.atomic import atomic_dir
from recommender.prompts import (GROUNDING_TASKS, PROMPT_FORMAT, TEMPLATES, grounding_prompt, pick_template,
                                 render_prompt)

MANIFEST = "manifest.json"


@dataclass
class ShardsConfig:
    catalog: list[Path] = field(default_factory=list)
    ids: list[Path] = field(default_factory=list)
    out: Path | None = None
    samples_per_shard: int = 2000
    max_history: int = MAX_HISTORY
    user_ids: bool = False
    split: str = "train"
    grounding: list[str] = field(default_factory=list)
    grounding_max_words: int = 24
    templates: int = len(TEMPLATES)
    unseen_share: float = 0.0
    seed: int = 0

    def check(self) -> None:
        if len(self.catalog) != len(self.ids):
            raise ValueError(f"give one --ids per --catalog (got {len(self.catalog)} catalogs, {len(self.ids)} ids)")
        unknown = set(self.grounding) - set(GROUNDING_TASKS)
        if unknown:
            raise ValueError(f"unknown grounding task(s) {sorted(unknown)}: choose from {GROUNDING_TASKS}")
        if not 1 <= self.templates <= len(TEMPLATES):
            raise ValueError(f"templates must be 1..{len(TEMPLATES)}, got {self.templates}")
        if self.samples_per_shard < 1:
            raise ValueError("samples_per_shard must be >= 1")
        if not 0.0 <= self.unseen_share < 1.0:
            raise ValueError(f"unseen_share must be in [0, 1), got {self.unseen_share}")


HELP = {"catalog": "catalog directories", "ids": "ID directories, one per catalog", "out": "shard folder to write",
        "user_ids": "put user IDs in the prompts", "split": "train (default) or valid/test",
        "grounding": f"grounding tasks mixed in, one sample per item each (train split): {GROUNDING_TASKS}",
        "grounding_max_words": "words of item text (text_to_id) or title (id_to_title) in grounding samples",
        "templates": "prompts drawn from the first N templates (1: only the evaluation's template)",
        "unseen_share": "train split: a seeded share of each catalog's items never shown in an input (taken out of "
                        "every history, no ID -> title sample), only as targets: simulated unseen items, so that "
                        "writing an ID the model never read is part of what it learns (0: off)"}


def build_samples(cfg: ShardsConfig) -> list[dict]:
    """All samples of ``cfg.split`` over the catalogs (and the grounding samples), in a seeded random order.

    A recommendation sample keeps its parts in ``meta`` (history IDs, user ID, template), so that the trainer can
    render it again with another template every epoch."""
    rng = random.Random(cfg.seed)
    out: list[dict] = []
    for cat_dir, ids_dir in zip(cfg.catalog, cfg.ids):
        cat = read_catalog(cat_dir)
        id_of = dict(zip(cat.item_ids, item_id_texts(ids_dir, cat.item_ids)))
        users = user_id_texts(ids_dir) if cfg.user_ids else {}
        hidden = unseen_items(cat.item_ids, cfg.unseen_share, cfg.seed) if cfg.split == "train" else set()
        for s in samples(cat.sequences, cfg.split, cfg.max_history):
            shown = [i for i in s.history if i not in hidden]
            if not shown:  # every history item hidden: nothing to predict from
                continue
            t = pick_template(rng, cfg.templates)
            user = cat.users[s.user]
            history, user_id = [id_of[i] for i in shown], users.get((user, s.position))
            out.append({"src": render_prompt(history, user_id, t), "tgt": id_of[s.target], "meta": {
                "task": "rec", "domain": cat.user_domains[s.user], "user": user, "position": s.position,
                "template": t, "target": s.target, "history": history, "user_id": user_id}})
        if cfg.split == "train":
            out += grounding_samples(cat, id_of, cfg.grounding, cfg.grounding_max_words, hidden)
    rng.shuffle(out)
    return out


def unseen_items(item_ids: list[str], share: float, seed: int) -> set[str]:
    """A seeded ``share`` of the items (drawn from their sorted ids: the same set for the same catalog content)."""
    if share <= 0:
        return set()
    ordered = sorted(item_ids)
    return set(random.Random(f"{seed}:unseen").sample(ordered, int(round(share * len(ordered)))))


def grounding_samples(cat, id_of: dict[str, str], tasks: list[str], max_words: int,
                      hidden: set[str] = frozenset()) -> list[dict]:
    """One sample per item and task: what the ID words mean (item text -> ID, ID -> title); a ``hidden`` item's
    ID is never an input (no ID -> title sample)."""
    out = []
    for item, domain, fields, text in zip(cat.item_ids, cat.domains, cat.fields, cat.texts):
        title = str(fields.get("title") or fields.get("name") or text)
        for task in (t for t in tasks if not (item in hidden and t == "id_to_title")):
            src, tgt = grounding_prompt(task, text, id_of[item], title, max_words)
            out.append({"src": src, "tgt": tgt, "meta": {"task": task, "domain": domain, "target": item}})
    return out


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 0
    tar.addfile(info, io.BytesIO(data))


def write_shards(cfg: ShardsConfig) -> dict:
    if cfg.out is None:
        raise ValueError("shards needs out")
    rows = build_samples(cfg)
    # (unseen_share joins the hash only when set, so that shards written before it existed keep theirs)
    config_hash = hashlib.sha256(json.dumps({k: str(v) for k, v in vars(cfg).items()
                                             if k != "out" and not (k == "unseen_share" and not v)},
                                            sort_keys=True).encode()).hexdigest()[:16]
    manifest = {"samples": len(rows), "shards": [], "per_domain": {}, "config_hash": config_hash,
                "per_task": dict(sorted(Counter(r["meta"]["task"] for r in rows).items())),
                "prompt_format": PROMPT_FORMAT, "seed": cfg.seed, "split": cfg.split, "user_ids": cfg.user_ids,
                "max_history": cfg.max_history, "templates": cfg.templates,
                "id_tables": [
                    {"catalog": str(c), "ids": str(i), "ids_hash": ids_hash(i),
                     "tokenizer_fingerprint": table_fingerprint(Path(i) / ITEM_TABLE)}
                    for c, i in zip(cfg.catalog, cfg.ids)]}
    with atomic_dir(cfg.out) as tmp:
        for n, start in enumerate(range(0, len(rows), cfg.samples_per_shard)):
            name = f"shard-{n:06d}.tar"
            chunk = rows[start:start + cfg.samples_per_shard]
            with tarfile.open(tmp / name, "w") as tar:
                for k, row in enumerate(chunk):
                    key = f"s{start + k:09d}"
                    _add(tar, f"{key}.src.txt", row["src"].encode())
                    _add(tar, f"{key}.tgt.txt", row["tgt"].encode())
                    _add(tar, f"{key}.meta.json", json.dumps(row["meta"]).encode())
            per = {}
            for row in chunk:
                per[row["meta"]["domain"]] = per.get(row["meta"]["domain"], 0) + 1
            manifest["shards"].append({"name": name, "samples": len(chunk), "per_domain": per})
            for d, c in per.items():
                manifest["per_domain"][d] = manifest["per_domain"].get(d, 0) + c
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def shard_urls(shards_dir: Path | str) -> list[str]:
    return [str(Path(shards_dir) / s["name"]) for s in read_manifest(shards_dir)["shards"]]


def rank_sample_counts(shards_dir: Path | str, world: int) -> list[int]:
    """Samples each rank reads (ranks take shards rank, rank + world, ...: WebDataset's split_by_node)."""
    counts = [s["samples"] for s in read_manifest(shards_dir)["shards"]]
    return [sum(counts[r::world]) for r in range(world)]


def _fields(s: dict) -> dict:
    return {"key": s["__key__"], "src": s["src.txt"], "tgt": s["tgt.txt"], "meta": s["meta.json"]}


def _shard_dataset(shards_dir: Path | str, nodesplitter, workersplitter):
    """The shards' samples (``_fields``) in shard order, the shards split among nodes and workers as given."""
    import webdataset as wds

    return (wds.WebDataset(shard_urls(shards_dir), nodesplitter=nodesplitter, workersplitter=workersplitter,
                           shardshuffle=False, empty_check=False)
            .decode()
            .map(_fields))


def rank_samples(shards_dir: Path | str, workers: int = 0) -> Iterator[dict]:
    """This process's samples (``key``, ``src``, ``tgt``, ``meta``) in shard order: WebDataset splits the shards by
    node (rank, from RANK/WORLD_SIZE) and by loader worker, so each sample is read once per epoch across them."""
    import torch
    import webdataset as wds

    ds = _shard_dataset(shards_dir, wds.split_by_node, wds.split_by_worker)
    yield from torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)


def all_samples(shards_dir: Path | str) -> Iterator[dict]:
    """Every sample of the shards (``rank_samples``' fields), whatever this process's rank: for tables that every
    rank must build the same (``pretrain.data.successor_table``)."""
    def every_shard(src, group=None):
        return src

    yield from _shard_dataset(shards_dir, every_shard, every_shard)


def check_prompt_format(shards_dir: Path | str) -> None:
    """Shards hold rendered prompts; evaluation renders its own. Shards from before the history was written most
    recent first would train a model on another order than the one it is evaluated and served with."""
    found = read_manifest(shards_dir).get("prompt_format", "oldest-first")
    if found != PROMPT_FORMAT:
        raise ValueError(f"{Path(shards_dir) / MANIFEST}: prompts written {found}, but this version writes and "
                         f"evaluates them {PROMPT_FORMAT}: write the shards again (`idgenrec shards`, or delete the "
                         "folder to let `idgenrec standard` / the demo redo it)")


def read_manifest(shards_dir: Path | str) -> dict:
    path = Path(shards_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest: is this a folder written by `idgenrec shards`?")
    return json.loads(path.read_text())
