"""Small real slices of a dataset (shared layout), e.g. the sample shipped in ``catalog/sample/``."""
from __future__ import annotations

import random
from pathlib import Path

from catalog.sources import read_shared, write_shared
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
        write_shared(tmp, sequences, {i: fields for i, fields in raw.items.items() if i in used})
        (tmp / "SOURCE.md").write_text(
            f"# Sample of {src.name}\n\n{len(sequences)} users drawn at random (seed {seed}) from `{src.name}` "
            f"with the {len(used)} items they touch; lines unchanged. Made by `idgenrec sample`. "
            f"See the full dataset's SOURCE.md for provenance and terms (research use).\n")
    return {"users": len(sequences), "items": len(used), "interactions": sum(len(s) for _, s in sequences)}
