"""The normalized catalog on disk: ``items.parquet``, ``sequences.parquet`` and ``stats.json``.

items: item_id, domain, fields (JSON of the cleaned source fields), text (rendered).
sequences: user_id, domain, items (item ids, oldest first).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from infra.atomic import atomic_dir, write_json
from infra.errors import DataError

ITEMS_FILE, SEQUENCES_FILE, STATS_FILE = "items.parquet", "sequences.parquet", "stats.json"


@dataclass
class Catalog:
    """Items and user sequences of one or more domains; row order is the fixed item order used everywhere."""

    item_ids: list[str]
    domains: list[str]
    fields: list[dict[str, Any]]
    texts: list[str]
    users: list[str]
    user_domains: list[str]
    sequences: list[list[str]]
    stats: dict[str, Any] = field(default_factory=dict)

    def item_index(self) -> dict[str, int]:
        """Item id -> row."""
        return {item: i for i, item in enumerate(self.item_ids)}

    @property
    def num_interactions(self) -> int:
        return sum(len(s) for s in self.sequences)


def write_catalog(catalog: Catalog, out: Path | str, extra_files: dict[str, str] | None = None) -> None:
    """Write the catalog directory atomically (a crash leaves the previous one, or none, never half of one)."""
    with atomic_dir(out) as tmp:
        pq.write_table(pa.table({
            "item_id": pa.array(catalog.item_ids, pa.string()),
            "domain": pa.array(catalog.domains, pa.string()),
            "fields": pa.array([json.dumps(f, ensure_ascii=False) for f in catalog.fields], pa.string()),
            "text": pa.array(catalog.texts, pa.string()),
        }), tmp / ITEMS_FILE)
        pq.write_table(pa.table({
            "user_id": pa.array(catalog.users, pa.string()),
            "domain": pa.array(catalog.user_domains, pa.string()),
            "items": pa.array(catalog.sequences, pa.list_(pa.string())),
        }), tmp / SEQUENCES_FILE)
        write_json(tmp / STATS_FILE, catalog.stats)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")


def is_catalog(path: Path | str) -> bool:
    """Whether ``path`` is a catalog directory (e.g. a corpus from ``idgenrec corpus``), not a dataset folder."""
    return all((Path(path) / name).is_file() for name in (ITEMS_FILE, SEQUENCES_FILE, STATS_FILE))


def read_catalog(path: Path | str) -> Catalog:
    """Load a catalog directory written by :func:`write_catalog`."""
    path = Path(path)
    for name in (ITEMS_FILE, SEQUENCES_FILE):
        if not (path / name).is_file():
            raise DataError(path / name, None, "not found: is this a catalog made by `idgenrec prepare`?")
    items = pq.read_table(path / ITEMS_FILE).to_pydict()
    seqs = pq.read_table(path / SEQUENCES_FILE).to_pydict()
    stats = json.loads((path / STATS_FILE).read_text()) if (path / STATS_FILE).exists() else {}
    return Catalog(item_ids=items["item_id"], domains=items["domain"], fields=[json.loads(f) for f in items["fields"]],
                   texts=items["text"], users=seqs["user_id"], user_domains=seqs["domain"],
                   sequences=seqs["items"], stats=stats)
