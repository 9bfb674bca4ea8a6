"""Baselines in the same harness. Popularity: every user gets the items most often seen in training targets and
histories (a sanity floor for every report)."""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from catalog.split import samples


def popularity_ranking(sequences: Sequence[Sequence[str]], split: str, k: int) -> list[str]:
    """Top-k items by interaction count in what the model may see before ``split`` targets (no test leakage):
    for test, everything but the last item; for valid, everything but the last two."""
    cut = 1 if split == "test" else 2
    counts = Counter(i for s in sequences for i in s[: max(len(s) - cut, 0)])
    return [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def popularity_metrics(sequences: Sequence[Sequence[str]], split: str, ks=(5, 10)) -> dict[str, float]:
    from eval.metrics import leave_one_out_metrics

    top = popularity_ranking(sequences, split, max(ks))
    targets = [s.target for s in samples(sequences, split)]
    return leave_one_out_metrics([top] * len(targets), targets, ks)
