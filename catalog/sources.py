"""The shared dataset layout: ``user_sequence.txt`` (user then items, oldest first) + ``items.jsonl.gz``."""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.lines import iter_lines, iter_records
from infra.errors import Problems


@dataclass
class RawDataset:
    """What a reader returns: item fields by id (file order) and user sequences (oldest first).

    ``item_lines`` and ``user_lines`` remember where each id came from, for error messages later.
    """

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    sequences: list[tuple[str, list[str]]] = field(default_factory=list)
    items_path: Path | None = None
    sequences_path: Path | None = None
    user_lines: list[int] = field(default_factory=list)


def read_items(path: Path, problems: Problems, id_field: str = "item_id", strict_ids: bool = False,
               lines: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
    """Item records keyed by id; a missing or duplicate id, or one with white space inside (a history line could never
    name it), is a problem (the first one is kept). ``strict_ids``: an id must be a JSON string (a number is a problem,
    not silently turned into text). ``lines``, when given, is filled with each item's line number."""
    items: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {} if lines is None else lines
    for number, record in iter_records(path, problems):
        item_id = record.get(id_field)
        if item_id is None or str(item_id).strip() == "":
            problems.report("missing_item_id", path, number, f"record has no '{id_field}'")
            continue
        if strict_ids and not isinstance(item_id, str):
            problems.report("bad_item_id", path, number, f"'{id_field}' is {item_id!r}, not a string: write it in "
                            "quotes as it appears in histories")
            continue
        item_id = str(item_id).strip()
        if len(item_id.split()) > 1:
            problems.report("bad_item_id", path, number, f"item id {item_id!r} holds white space: a history line "
                            "(user item item ...) could never name it")
            continue
        if item_id in items:
            problems.report("duplicate_item", path, number,
                            f"duplicate item id {item_id!r} (first on line {first_line[item_id]})")
            continue
        first_line[item_id] = number
        items[item_id] = {k: v for k, v in record.items() if k != id_field}
    return items


def read_sequences(path: Path, problems: Problems) -> tuple[list[tuple[str, list[str]]], list[int]]:
    """``user item item ...`` lines; a user with no items or a repeated user is a problem."""
    sequences: list[tuple[str, list[str]]] = []
    lines: list[int] = []
    seen: dict[str, int] = {}
    for number, line in iter_lines(path, problems):
        user, *items = line.split()
        if not items:
            problems.report("empty_history", path, number, f"user {user!r} has no items")
            continue
        if user in seen:
            problems.report("duplicate_user", path, number, f"duplicate user {user!r} (first on line {seen[user]})")
            continue
        seen[user] = number
        sequences.append((user, items))
        lines.append(number)
    return sequences, lines


def read_shared(folder: Path, problems: Problems) -> RawDataset:
    """Read a dataset folder in the layout of ``../shared/data/<Name>/``."""
    items_path = folder / "items.jsonl.gz"
    if not items_path.exists() and (folder / "items.jsonl").exists():
        items_path = folder / "items.jsonl"
    seq_path = folder / "user_sequence.txt"
    items = read_items(items_path, problems)
    sequences, lines = read_sequences(seq_path, problems)
    return RawDataset(items=items, sequences=sequences, items_path=items_path, sequences_path=seq_path,
                      user_lines=lines)


def write_items(path: Path, records: dict[str, dict[str, Any]]) -> None:
    """``items.jsonl.gz``: one JSON object per item, its id first (gzip without a timestamp: same input, same bytes)."""
    with gzip.GzipFile(path, "wb", mtime=0) as fh:
        for item_id, fields in records.items():
            fh.write((json.dumps({"item_id": item_id, **fields}, ensure_ascii=False) + "\n").encode())


def write_shared(folder: Path, sequences: list[tuple[str, list[str]]], records: dict[str, dict[str, Any]]) -> None:
    """A dataset in the shared layout: ``user_sequence.txt`` (users with no items left out) and ``items.jsonl.gz``."""
    (folder / "user_sequence.txt").write_text("".join(f"{u} {' '.join(s)}\n" for u, s in sequences if s))
    write_items(folder / "items.jsonl.gz", records)
