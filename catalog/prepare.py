"""``idgenrec prepare``: read a dataset (shared layout or raw public format) and write a normalized catalog."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from catalog.raw import detect_format, read_amazon, read_yelp
from catalog.sources import RawDataset, read_shared
from catalog.split import skipped_users
from catalog.store import Catalog, write_catalog
from catalog.text import DEFAULT_EXCLUDE, DEFAULT_FIELD_ORDER, render_item
from infra.config import config_to_dict
from infra.errors import DataError, Problems

log = logging.getLogger(__name__)
FORMATS = ("auto", "shared", "amazon", "yelp")


@dataclass
class PrepareConfig:
    """Everything ``idgenrec prepare`` does is set here (YAML or flags)."""

    data: Path | None = None
    out: Path | None = None
    format: str = "auto"
    domain: str | None = None
    skip_bad: bool = False
    kcore: int = 5
    field_order: list[str] = field(default_factory=lambda: list(DEFAULT_FIELD_ORDER))
    exclude_fields: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    fallback_fields: list[str] = field(default_factory=lambda: ["idgenrec_phase0_id"])
    text_fields: list[str] = field(default_factory=list)
    max_field_words: int = 64
    max_text_words: int = 256
    keep_unused_items: bool = False

    def check(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")
        if self.max_text_words < 1:
            raise ValueError("max_text_words must be >= 1")


HELP = {
    "data": "dataset folder (shared layout, Amazon 2014/2018 raw files, or Yelp academic dataset)",
    "out": "catalog directory to write (replaced atomically)",
    "format": f"input format, one of {FORMATS}",
    "domain": "domain name stored with every item and user (default: the data folder's name)",
    "skip_bad": "skip bad lines/items and count them in stats.json instead of stopping at the first",
    "kcore": "k-core filter for raw reviews (users and items with >= k interactions)",
    "field_order": "fields rendered first, in this order; all other fields follow",
    "exclude_fields": "fields never rendered (not item metadata)",
    "fallback_fields": "rendered only for items whose other fields give no text (e.g. Sports' keyword IDs)",
    "text_fields": "render only these fields (e.g. title: a thin-text catalog); empty: every field not excluded",
    "max_field_words": "word budget of one field's value",
    "max_text_words": "word budget of the whole rendered text",
    "keep_unused_items": "keep items with metadata that appear in no sequence",
}


def read_dataset(cfg: PrepareConfig, problems: Problems) -> RawDataset:
    fmt = detect_format(cfg.data) if cfg.format == "auto" else cfg.format
    log.info("reading %s (%s format)", cfg.data, fmt)
    if fmt == "shared":
        return read_shared(cfg.data, problems)
    reader = read_amazon if fmt == "amazon" else read_yelp
    return reader(cfg.data, problems, k=cfg.kcore)


def _link_sequences(raw: RawDataset, problems: Problems) -> list[tuple[str, list[str]]]:
    """Keep sequence items that have metadata; an item without metadata is a problem (skipped if allowed)."""
    out = []
    for n, (user, items) in enumerate(raw.sequences):
        line = raw.user_lines[n] if raw.user_lines else None
        kept = []
        for item in items:
            if item in raw.items:
                kept.append(item)
            else:
                problems.report("item_without_metadata", raw.sequences_path, line,
                                f"item {item!r} has no metadata in {raw.items_path}")
        if kept:
            out.append((user, kept))
        else:
            problems.report("empty_history", raw.sequences_path, line, f"user {user!r} has no item with metadata")
    return out


def kept_fields(fields: dict[str, Any], cfg: PrepareConfig) -> dict[str, Any]:
    """The item fields the catalog keeps: with ``text_fields`` only those (and the fallback fields), so that no later
    step reads what the text does not show (the warm start's targets once took the leaf category of a name-only
    variant, an ID word the text never held); else every field."""
    if not cfg.text_fields:
        return fields
    return {k: v for k, v in fields.items() if k in cfg.text_fields or k in cfg.fallback_fields}


def render(fields: dict[str, Any], cfg: PrepareConfig) -> tuple[str, bool]:
    """(text, from real metadata?) - the fallback fields only when nothing else gives text."""
    kw = dict(field_order=cfg.field_order, max_field_words=cfg.max_field_words, max_text_words=cfg.max_text_words)
    shown = {k: v for k, v in fields.items() if k in cfg.text_fields} if cfg.text_fields else fields
    text = render_item(shown, exclude=list(cfg.exclude_fields) + list(cfg.fallback_fields), **kw)
    if text:
        return text, True
    fallback = [fields[k] for k in cfg.fallback_fields if k in fields]
    return render_item({"keywords": fallback}, exclude=(), **kw), False


def compute_stats(catalog: Catalog, real_text: list[bool], problems: Problems, extra: dict[str, Any]) -> dict:
    n_users, n_items, n_inter = len(catalog.users), len(catalog.item_ids), catalog.num_interactions
    lengths = sorted(len(s) for s in catalog.sequences) or [0]
    field_counts = Counter(k for f in catalog.fields for k, v in f.items() if v not in (None, "", [], {}))
    return {
        "users": n_users,
        "items": n_items,
        "interactions": n_inter,
        "density": n_inter / (n_users * n_items) if n_users and n_items else 0.0,
        "text_coverage": sum(real_text) / n_items if n_items else 0.0,
        "items_with_any_text": sum(bool(t) for t in catalog.texts),
        "mean_text_words": sum(len(t.split()) for t in catalog.texts) / max(n_items, 1),
        "field_coverage": {k: v / max(n_items, 1) for k, v in sorted(field_counts.items())},
        "sequence_length": {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1],
                            "mean": n_inter / max(n_users, 1)},
        "users_with_fewer_than_3_items": skipped_users(catalog.sequences),
        "skipped": problems.summary(),
        **extra,
    }


def build_catalog(cfg: PrepareConfig, problems: Problems) -> Catalog:
    raw = read_dataset(cfg, problems)
    sequences = _link_sequences(raw, problems)
    if not sequences:
        where = raw.sequences_path or cfg.data
        raise DataError(where, None, "no users with items: the dataset is empty" +
                        (f" after skipping bad input {problems.summary()}" if problems.counts else ""))
    used = {i for _, items in sequences for i in items}
    item_ids = [i for i in raw.items if cfg.keep_unused_items or i in used]
    domain = cfg.domain or Path(cfg.data).resolve().name
    rendered = [render(raw.items[i], cfg) for i in item_ids]
    catalog = Catalog(
        item_ids=item_ids, domains=[str(raw.items[i].get("domain", domain)) for i in item_ids],
        fields=[kept_fields(raw.items[i], cfg) for i in item_ids], texts=[t for t, _ in rendered],
        users=[u for u, _ in sequences], user_domains=[domain] * len(sequences),
        sequences=[s for _, s in sequences])
    catalog.stats = compute_stats(catalog, [r for _, r in rendered], problems, {
        "domain": domain, "source": str(cfg.data),
        "catalog_items_with_metadata": len(raw.items),
        "unused_items_dropped": len(raw.items) - len(item_ids),
    })
    return catalog


def prepare(cfg: PrepareConfig) -> Catalog:
    """Read, normalize, render and write; returns the catalog (with its stats)."""
    if cfg.data is None or cfg.out is None:
        raise ValueError("prepare needs data and out")
    problems = Problems(skip_bad=cfg.skip_bad)
    catalog = build_catalog(cfg, problems)
    write_catalog(catalog, cfg.out, {"prepare_config.yaml": yaml.safe_dump(config_to_dict(cfg), sort_keys=False)})
    if problems.counts:
        log.warning("skipped bad input: %s (first of each: %s)", problems.summary(), problems.examples)
    return catalog
