"""From timestamped interactions to user sequences: time order and the usual k-core filter."""
from __future__ import annotations

from collections import Counter
from typing import Iterable, NamedTuple


class Interaction(NamedTuple):
    user: str
    item: str
    time: float
    order: int  # position in the source file: breaks ties in time, so the result is deterministic


def kcore(interactions: list[Interaction], k: int) -> list[Interaction]:
    """Repeatedly drop users and items with fewer than ``k`` interactions until none is left (k <= 1: no-op)."""
    if k <= 1:
        return interactions
    current = interactions
    while True:
        users = Counter(x.user for x in current)
        items = Counter(x.item for x in current)
        kept = [x for x in current if users[x.user] >= k and items[x.item] >= k]
        if len(kept) == len(current):
            return kept
        current = kept


def to_sequences(interactions: Iterable[Interaction]) -> list[tuple[str, list[str]]]:
    """Each user's items, oldest first (ties by file order); users in order of first appearance."""
    by_user: dict[str, list[Interaction]] = {}
    for x in interactions:
        by_user.setdefault(x.user, []).append(x)
    return [(u, [x.item for x in sorted(xs, key=lambda x: (x.time, x.order))]) for u, xs in by_user.items()]
