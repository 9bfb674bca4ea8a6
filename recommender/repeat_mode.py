"""The repeat mode: a label-free mix of the user's own history items into the recommender's ranking.

RepeatNet (Ren et al., AAAI 2019) ranks by P(item) = P(repeat) P(item | repeat) + P(explore) P(item | explore).
On a dataset the model never saw (zero-shot), nothing it trained on says how often this dataset's users come back
to an item: Beauty and Toys histories never repeat an item, 4% of Yelp's history positions do. Both modes are
therefore read without labels:

- the repeat mode from the evaluated users' histories: how often a history position repeats an earlier item (the
  dataset's rate, shrunk towards each user's own rate by a beta-binomial prior fitted to the users' spread), and
  which earlier item it repeats (by recency: the most recent distinct item, the one before, ...);
- the explore mode from the ranking itself: the hit rate at each rank of the recommender's ranking, measured on a
  validation run (``explore_rates``; a zero-shot validation domain for zero-shot targets).

A dataset whose histories never repeat gets a repeat probability of 0: its rankings are left exactly as they were.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from recommender.modes import merge_modes
from recommender.repeats import Ranked


@dataclass(frozen=True)
class RepeatProfile:
    rate: float  # share of history positions (after the first) that repeat an earlier item of the same history
    prior: float  # the beta prior's weight, in positions (inf: every user gets the dataset's rate)
    lags: tuple[float, ...]  # P(the repeated item is the j-th most recent distinct earlier item | a repeat)


def repeats_in(history: Sequence[str]) -> tuple[int, int, list[int]]:
    """Positions that could repeat (all but the first), those that do, and each repeat's recency rank (0: the most
    recent distinct earlier item)."""
    seen: list[str] = []  # distinct items, most recent last
    lags = []
    for item in history:
        if item in seen:
            lags.append(len(seen) - 1 - seen.index(item))
            seen.remove(item)
        seen.append(item)
    return max(len(history) - 1, 0), len(lags), lags


def beta_prior_weight(trials: Sequence[int], hits: Sequence[int]) -> float:
    """The weight (a + b) of the beta prior on users' repeat rates, by the method of moments of the beta-binomial
    (Kleinman 1973): how much the users' rates spread beyond binomial noise. inf when they do not."""
    pairs = [(m, r) for m, r in zip(trials, hits) if m > 0]
    total = sum(m for m, _ in pairs)
    if len(pairs) < 2 or total == 0:
        return math.inf
    mean = sum(r for _, r in pairs) / total
    if mean in (0.0, 1.0):
        return math.inf
    spread = sum(m * (r / m - mean) ** 2 for m, r in pairs) / (mean * (1 - mean))
    denominator = total - sum(m * m for m, _ in pairs) / total - (len(pairs) - 1)
    rho = (spread - (len(pairs) - 1)) / denominator if denominator > 0 else 0.0
    return (1 - rho) / rho if rho > 1e-6 else math.inf


def repeat_profile(histories: Sequence[Sequence[str]], depth: int = 50) -> RepeatProfile:
    """The repeat mode of these histories (no targets read): the rate, the prior's weight and the recency profile
    over the ``depth`` most recent distinct items."""
    counted = [repeats_in(h) for h in histories]
    trials, hits = [c[0] for c in counted], [c[1] for c in counted]
    lags = [0] * depth
    for _, _, ranks in counted:
        for j in ranks:
            lags[min(j, depth - 1)] += 1
    total = sum(trials)
    rate = sum(hits) / total if total else 0.0
    n = sum(lags)
    return RepeatProfile(rate, beta_prior_weight(trials, hits), tuple(v / n if n else 0.0 for v in lags))


def repeat_probability(profile: RepeatProfile, history: Sequence[str]) -> float:
    """P(the next item repeats one of ``history``): the user's own rate, shrunk to the dataset's by the prior."""
    if profile.rate == 0.0:
        return 0.0
    trials, hits, _ = repeats_in(history)
    if math.isinf(profile.prior):
        return profile.rate
    return (hits + profile.prior * profile.rate) / (trials + profile.prior)


def merge_repeat_mode(explore: Ranked, history: Sequence[str], p_repeat: float, lags: Sequence[float],
                      explore_rates: Sequence[float], k: int | None = None) -> Ranked:
    """``explore`` (best first) at (1 - p) x the hit rate of its rank, and the distinct ``history`` items at p x
    their recency's share of repeats, summed for an item in both; best first, the first ``k`` (default: as many as
    ``explore``). With p = 0 the explore ranking is returned as it was."""
    k = len(explore) if k is None else k
    if p_repeat <= 0.0 or not explore_rates:
        return explore[:k]
    recent = list(dict.fromkeys(reversed(history)))
    weights = [lags[min(j, len(lags) - 1)] for j in range(len(recent))]
    if not sum(weights):  # no repeat this far back in the profile: the user's items alike
        weights = [1.0] * len(recent)
    total = sum(weights)  # a user can only repeat what they have: the profile cut to their history
    return merge_modes([(1 - p_repeat, [i for i, _ in explore], explore_rates),
                        (p_repeat, recent, [w / total for w in weights])], k)
