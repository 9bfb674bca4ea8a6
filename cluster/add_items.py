"""``idgenrec add-items``: IDs for new items from their text alone, without retraining anything.

New items get IDs by Algorithm 1 **against the existing table**: the registry starts with every ID already taken,
so no new ID equals an old one, and no old ID changes. The rules are the original job's (its Algorithm 1 fields
and source length are read from the table's ``summary.json``), the items go in file order, so the result is
deterministic; the work is resumable like the ID job (``<ids>/work/add_<hash>/``). The new table is written
atomically after the previous one is kept as ``item_ids.v<N>.parquet``. A recommender builds its prefix trie from
the table when it loads, so the new items can be decoded at once; ``--catalog`` also appends them to the catalog,
which ``eval`` ranks over. Items that already have an ID are skipped (or refused with ``--existing error``): a
second run on the same file changes nothing.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

from catalog.id_table import ITEM_TABLE, Escalation, read_id_table, table_fingerprint, write_id_table
from catalog.prepare import PrepareConfig, render
from catalog.sources import read_items
from catalog.store import read_catalog, write_catalog
from catalog.tokenizer import load_tokenizer, tokenizer_fingerprint
from cluster.idjob import IDJobConfig, escalation, id_workers, run_kind
from infra.atomic import atomic_path, write_json
from infra.config import load_config
from infra.errors import DataError, Problems, require_file
from infra.fingerprint import content_digest, settings_digest

log = logging.getLogger("idgenrec.add_items")
EXISTING = ("skip", "error")


@dataclass
class AddItemsConfig:
    ids: Path | None = None
    items: Path | None = None
    catalog: Path | None = None
    model: Path | None = None
    existing: str = "skip"
    skip_bad: bool = False
    actors: int = 0
    address: str | None = None
    device: str = "auto"

    def check(self) -> None:
        if self.existing not in EXISTING:
            raise ValueError(f"existing must be one of {EXISTING}, got {self.existing!r}")
        if self.actors < 0:
            raise ValueError("actors must be >= 0")


HELP = {"ids": "ID directory of a finished `idgenrec ids` job (item_ids.parquet, summary.json); updated in place",
        "items": "new items, items.jsonl(.gz) layout (one JSON object per line with item_id and metadata fields)",
        "catalog": "catalog directory to extend with the new items (so that `eval` ranks them too); optional",
        "model": "ID generator directory (default: the one the ID job used, from its summary.json)",
        "existing": "items that already have an ID: skip (default) or error",
        "skip_bad": "skip and count malformed lines and items without text (default: stop with an error)",
        "actors": "Ray generator actors (0: generate in this process)",
        "address": "Ray cluster address (default: RAY_ADDRESS if set, else a local Ray instance)",
        "device": "auto (a GPU when present), cpu or cuda"}


def original_job(cfg: AddItemsConfig) -> IDJobConfig:
    """The ID job that made the table, with this run's generator, actors and device: same Algorithm 1 rules."""
    path = Path(cfg.ids) / "summary.json"
    if not path.is_file():
        raise DataError(path, None, "not found: add-items needs the folder of a finished `idgenrec ids` job")
    saved = json.loads(path.read_text())["config"]
    known = {f.name for f in fields(IDJobConfig)}
    job = IDJobConfig(**{k: v for k, v in saved.items() if k in known})
    model = cfg.model or job.model
    if model is None or not Path(model).is_dir():
        raise DataError(path, None, f"generator {model} not found: pass --model")
    return replace(job, model=Path(model), catalog=None, out=Path(cfg.ids), actors=cfg.actors, address=cfg.address,
                   device=cfg.device, user_ids=False)


def render_config(catalog: Path | None) -> PrepareConfig:
    """How the catalog rendered item text (its prepare_config.yaml), so new items read like the old ones."""
    saved = Path(catalog) / "prepare_config.yaml" if catalog else None
    return load_config(PrepareConfig, saved) if saved and saved.is_file() else PrepareConfig()


def new_item_texts(cfg: AddItemsConfig, known: set[str], pcfg: PrepareConfig, problems: Problems
                   ) -> tuple[dict[str, dict], list[str], list[str]]:
    """(all records of the file, fresh item ids in file order, their texts rendered by ``pcfg``)."""
    lines: dict[str, int] = {}
    records = read_items(require_file(cfg.items), problems, strict_ids=True, lines=lines)
    present = [i for i in records if i in known]
    if present and cfg.existing == "error":
        raise DataError(cfg.items, None, f"{len(present)} item(s) already have an ID, e.g. {present[:5]} "
                                         "(--existing skip leaves them as they are)")
    if present:
        log.info("%d item(s) already have an ID: skipped", len(present))
    fresh, texts = [], []
    for item, rec in records.items():
        if item in known:
            continue
        text, _ = render(rec, pcfg)
        if not text.strip():
            problems.report("empty_text", cfg.items, lines.get(item), f"item {item!r} has no text to make an ID from")
            continue
        fresh.append(item)
        texts.append(text)
    return records, fresh, texts


def keep_previous(ids_dir: Path) -> Path:
    """Copy the current table to the next free ``item_ids.v<N>.parquet`` (atomically) and return that path."""
    n = 1
    while (ids_dir / f"item_ids.v{n}.parquet").exists():
        n += 1
    kept = ids_dir / f"item_ids.v{n}.parquet"
    with atomic_path(kept) as tmp:
        shutil.copyfile(ids_dir / ITEM_TABLE, tmp)
    return kept


def old_escalation(table: dict[str, list]) -> Escalation | None:
    if "attempts" not in table:
        return None
    return Escalation(table["attempts"], table["lambda"], table["window_lo"], table["window_hi"])


def extend_table(ids_dir: Path, table: dict[str, list], fresh: list[str], assignments, tok) -> Path:
    """The old rows unchanged, then the new ones; returns where the previous version was kept."""
    kept = keep_previous(ids_dir)
    old, new = old_escalation(table), escalation(assignments)
    esc = None if old is None else Escalation(old.attempts + new.attempts, old.lam + new.lam,
                                              old.window_lo + new.window_lo, old.window_hi + new.window_hi)
    write_id_table(ids_dir / ITEM_TABLE, {"item_id": table["item_id"] + fresh},
                   table["id"] + [a.id for a in assignments], tok, esc)
    return kept


def extend_catalog(catalog: Path, records: dict[str, dict], table_items: set[str], pcfg: PrepareConfig) -> int:
    """Append the file's items that have an ID but are not in the catalog yet (idempotent); returns how many."""
    cat = read_catalog(catalog)
    have = set(cat.item_ids)
    add = [i for i in records if i in table_items and i not in have]
    if not add:
        return 0
    domain = cat.stats.get("domain") or (cat.domains[0] if cat.domains else "")
    cat.item_ids += add
    cat.domains += [str(records[i].get("domain", domain)) for i in add]
    cat.fields += [records[i] for i in add]
    cat.texts += [render(records[i], pcfg)[0] for i in add]
    cat.stats = {**cat.stats, "items": len(cat.item_ids), "added_items": cat.stats.get("added_items", 0) + len(add)}
    extra = {"prepare_config.yaml": (catalog / "prepare_config.yaml").read_text()} \
        if (catalog / "prepare_config.yaml").is_file() else None
    write_catalog(cat, catalog, extra)
    return len(add)


def run_add_items(cfg: AddItemsConfig) -> dict:
    """Give every new item of the file an ID; returns counts (added, skipped, catalog rows added)."""
    if cfg.ids is None or cfg.items is None:
        raise ValueError("add-items needs ids and items")
    t0, ids_dir = time.time(), Path(cfg.ids)
    job = original_job(cfg)
    table = read_id_table(ids_dir / ITEM_TABLE)
    problems, known, pcfg = Problems(skip_bad=cfg.skip_bad), set(table["item_id"]), render_config(cfg.catalog)
    records, fresh, texts = new_item_texts(cfg, known, pcfg, problems)
    result = {"file_items": len(records), "added": len(fresh), "already_present": sum(i in known for i in records),
              "skipped": problems.summary()}
    if fresh:
        tok = load_tokenizer(job.model)
        stored = table_fingerprint(ids_dir / ITEM_TABLE)
        if stored and stored != tokenizer_fingerprint(tok):
            raise DataError(ids_dir / ITEM_TABLE, None, f"IDs were made with tokenizer {stored}, the generator "
                            f"{job.model} has {tokenizer_fingerprint(tok)}: use the generator that made the table")
        # the resume key: what the new IDs are made from, by content (a generator retrained in place starts over)
        key = settings_digest([fresh, texts, table["id"][-1:], len(table["id"]), job.result_hash(),
                               content_digest(job.model)])
        with id_workers(job) as workers:
            assignments = run_kind(texts, fresh, ids_dir / "work" / f"add_{key}", job, workers,
                                   taken=table["id"])
        kept = extend_table(ids_dir, table, fresh, assignments, tok)
        result |= {"previous_table": str(kept), "examples": [[i, a.id] for i, a in zip(fresh[:5], assignments)]}
        log.info("%d new item IDs written to %s (previous table kept as %s)", len(fresh), ids_dir / ITEM_TABLE,
                 kept.name)
    if cfg.catalog:  # the table now holds the old items and the fresh ones
        result["catalog_added"] = extend_catalog(Path(cfg.catalog), records, known | set(fresh), pcfg)
    result["seconds"] = round(time.time() - t0, 2)
    if fresh:
        history = ids_dir / "additions.json"
        past = json.loads(history.read_text()) if history.is_file() else []
        write_json(history, past + [{"file": str(cfg.items), **result}])
    if problems.counts:
        log.warning("skipped %s (first: %s)", problems.summary(), next(iter(problems.examples.values())))
    return result
