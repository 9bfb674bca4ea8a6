"""The one central uniqueness registry: a Ray actor that owns the set of taken IDs.

Claims arrive in batches (a shard's proposals at a time, never one round trip per item) and are resolved in the
order given, by :func:`idgen.algorithm1.claim_round`. It needs no CPU of its own (``num_cpus=0``): on a 2-CPU node
a coordinating actor asking for one would wait forever behind the generators.
"""
from __future__ import annotations

import ray

from idgen.algorithm1 import claim_round
from infra.device import peak_rss_mb


@ray.remote(num_cpus=0)
class Registry:
    def __init__(self):
        self.taken: set[str] = set()

    def reset(self, taken: list[str]) -> int:
        self.taken = set(taken)
        return len(self.taken)

    def claim(self, proposals: list[tuple[int, list[str]]],
              last_chance: list[int] = ()) -> tuple[list[tuple[int, str]], list[int]]:
        claimed, failed = claim_round(self.taken, proposals, set(last_chance))
        return [tuple(c) for c in claimed], failed

    def size(self) -> int:
        return len(self.taken)

    def peak_memory_mb(self) -> float:
        return peak_rss_mb()
