"""Rankings mixed by modes: P(item) = sum over modes of P(mode) x P(item | mode).

A mode is a ranked list and what each of its ranks is worth: the hit rate at that rank, measured where the mode's
targets are (a validation run's ``explore_rates`` for the recommender; the recency of repeats for the repeat mode,
``recommender.repeat_mode``). Each item's score is the sum over the modes that list it of the mode's probability
times its rank's worth, so a mode takes a top slot only where it is likelier to hold the target than the rank it
displaces.

The new-item mode: after ``add-items``, items the recommender never trained on rarely reach its top 10 (their IDs
score low after any history). They get their own mode: a ranking among the new items only (by text similarity to
the user's recent items; an ID model has no interactions to rank them by) and a probability that the next item is
new, with no labels read: the new items' share of the catalog (a new item is taken to be as likely a target as an
average item). Its worth per rank is measured on the training data's validation with a seeded share of known
items treated as new (``pseudo_new_items``): text similarity reads only item text, so it ranks a new item as it
would a known one.
"""
from __future__ import annotations

import random
from typing import Sequence

from recommender.repeats import Ranked

NEW_MODE_DEPTH = 20  # ranks of the new-item mode's list (and of its worth, measured on validation)

Mode = tuple[float, Sequence[str], Sequence[float]]  # (P(mode), its items best first, the worth of each rank)


def merge_modes(modes: Sequence[Mode], k: int) -> Ranked:
    """The first ``k`` items by the sum over modes of P(mode) x the worth of the item's rank in that mode (a rank
    past the end of a mode's worths is worth its last one); ties keep the first mode's order."""
    pool: dict[str, float] = {}
    for p, items, worth in modes:
        if p <= 0.0 or not worth:
            continue
        for rank, item in enumerate(items):
            pool[item] = pool.get(item, 0.0) + p * worth[min(rank, len(worth) - 1)]
    return sorted(pool.items(), key=lambda kv: -kv[1])[:k]  # stable: ties keep the insertion order


def new_item_share(new_items: int, items: int) -> float:
    """P(the next item is new) without labels: the new items' share of the catalog."""
    return new_items / items if items else 0.0


def pseudo_new_items(items: Sequence[str], share: float, seed: int) -> set[str]:
    """A seeded ``share`` of ``items`` treated as new on the training data's validation, where the new-item mode's
    worth per rank is measured (the same draw for a given seed and item list)."""
    ordered = sorted(items)
    return set(random.Random(seed).sample(ordered, round(share * len(ordered))))


def merge_new_item_mode(known: Sequence[str], new_ranked: Sequence[str], p_new: float,
                        known_rates: Sequence[float], new_rates: Sequence[float], k: int = 10) -> Ranked:
    """``known`` (the recommender's ranking, best first) at (1 - p) x its validation hit rate per rank, mixed with
    the new items ranked among themselves at p x their mode's hit rate per rank: (item, P(mode) x worth) pairs, best
    first; p = 0 (or no worth measured) keeps ``known``'s order, each item at its own rank's worth."""
    if p_new <= 0.0 or not new_rates or not known_rates:
        return [(item, known_rates[min(r, len(known_rates) - 1)] if known_rates else 0.0)
                for r, item in enumerate(known[:k])]
    return merge_modes([(1 - p_new, known, known_rates), (p_new, new_ranked, new_rates)], k)
