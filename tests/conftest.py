"""Shared test helpers: where the real datasets are, and tiny dataset writers."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("IDGENREC_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_dataset(name: str) -> Path:
    """A real dataset folder from ../shared/data, or skip the test where it is absent."""
    path = SHARED_DATA / name
    if not (path / "user_sequence.txt").exists():
        pytest.skip(f"{path} not available")
    return path


def write_shared(folder: Path, sequences: dict[str, list[str]], items: list[dict], gz: bool = True) -> Path:
    """A dataset in the shared layout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "user_sequence.txt").write_text("".join(f"{u} {' '.join(s)}\n" for u, s in sequences.items()))
    data = "".join(json.dumps(i) + "\n" for i in items).encode()
    if gz:
        (folder / "items.jsonl.gz").write_bytes(gzip.compress(data))
    else:
        (folder / "items.jsonl").write_bytes(data)
    return folder


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    seqs = {"u1": ["a", "b", "c", "d"], "u2": ["b", "c", "e"], "u3": ["a", "e"]}
    items = [{"item_id": x, "title": f"Item {x.upper()} <b>bold</b>", "categories": ["Cat", x]} for x in "abcde"]
    return write_shared(tmp_path / "tiny", seqs, items)
