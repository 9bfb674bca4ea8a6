"""Small real slices of a dataset (shared layout), e.g. the sample shipped in ``catalog/sample/``."""
from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

from catalog.sources import read_shared
from infra.atomic import atomic_dir
from infra.errors import Problems

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"


def write_slice(src: Path, dst: Path, users: int, seed: int = 0) -> dict[str, int]:
    """Copy ``users`` random users (seeded; file order kept) and exactly the items they touch from ``src``."""
    raw = read_shared(src, Problems())
    rng = random.Random(seed)
    picked = set(rng.sample(range(len(raw.sequences)), min(users, len(raw.sequences))))
    sequences = [raw.sequences[i] for i in sorted(picked)]
    used = {i for _, items in sequences for i in items}
    with atomic_dir(dst) as tmp:
        (tmp / "user_sequence.txt").write_text("".join(f"{u} {' '.join(s)}\n" for u, s in sequences))
        with gzip.GzipFile(tmp / "items.jsonl.gz", "wb", mtime=0) as fh:
            for item_id, fields in raw.items.items():
                if item_id in used:
                    fh.write((json.dumps({"item_id": item_id, **fields}, ensure_ascii=False) + "\n").encode())
        (tmp / "SOURCE.md").write_text(
            f"# Sample of {src.name}\n\n{len(sequences)} users drawn at random (seed {seed}) from `{src.name}` "
            f"with the {len(used)} items they touch; lines unchanged. Made by `idgenrec sample`. "
            f"See the full dataset's SOURCE.md for provenance and terms (research use).\n")
    return {"users": len(sequences), "items": len(used), "interactions": sum(len(s) for _, s in sequences)}
