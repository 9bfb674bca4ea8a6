"""Ours merged with another method's ranking: a hybrid, reported as its own row beside pure ours, never instead of it.

Where a simple method beats ours (the first-order Markov chain on Scientific's top ranks), a user who runs both would
want the better of each list. Each ranking is a mode of ``recommender.modes.merge_modes``: an item scores the sum over
the two lists of the list's weight times what its rank is worth, the rank's hit rate on validation
(``eval.metrics.hit_rates_by_rank``). The weight of the other method is chosen on validation (NDCG@10), so test
is read once, at the chosen weight; weight 0 is pure ours and is always among the candidates.
"""
from __future__ import annotations

from typing import Sequence

from eval.metrics import hit_rates_by_rank, leave_one_out_metrics
from recommender.modes import merge_modes

HYBRID_GRID = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]  # the other method's weight; 0: ours alone
DEPTH = 20  # ranks of each list that enter the merge (and whose worth is measured)


def merged_rankings(ours: Sequence[Sequence[str]], other: Sequence[Sequence[str]], weight: float,
                    ours_worth: Sequence[float], other_worth: Sequence[float], k: int = 10) -> list[list[str]]:
    """Per user, the top ``k`` of ours at (1 - weight) x its rank's worth plus the other list at weight x its
    rank's worth."""
    return [[i for i, _ in merge_modes([(1 - weight, a[:DEPTH], ours_worth), (weight, b[:DEPTH], other_worth)], k)]
            for a, b in zip(ours, other)]


def choose_weight(ours: Sequence[Sequence[str]], other: Sequence[Sequence[str]], targets: Sequence[str],
                  grid: Sequence[float] = HYBRID_GRID) -> dict:
    """On validation rankings: each list's worth per rank, and the other method's weight with the best NDCG@10
    (ties: the smaller weight, so ours alone wins a tie). Returns ``weight``, ``ours_worth``, ``other_worth`` and
    each weight's NDCG@10 (``valid_ndcg10``)."""
    if len(ours) != len(other) or len(ours) != len(targets):
        raise ValueError(f"{len(ours)} rankings of ours, {len(other)} of the other method, {len(targets)} targets: "
                         "the hybrid needs the same users in the same order")
    worth = {"ours_worth": hit_rates_by_rank(ours, targets, DEPTH),
             "other_worth": hit_rates_by_rank(other, targets, DEPTH)}
    scores = {w: leave_one_out_metrics(merged_rankings(ours, other, w, **worth), targets)["NDCG@10"]
              for w in sorted(set(grid) | {0.0})}
    best = max(scores, key=lambda w: (scores[w], -w))
    return {"weight": best, **worth, "valid_ndcg10": {str(w): v for w, v in scores.items()}}
