"""HR@k and NDCG@k for leave-one-out: one held-out target per user, ranked over all items.

With a single relevant item, HR@k = 1 if it is in the top k, and NDCG@k = 1 / log2(rank + 1) at its 1-based rank
(0 outside the top k); the ideal DCG is 1. Each user counts once. Coverage@k says how many different items the
top-k lists use.
"""
from __future__ import annotations

import math
from typing import Sequence

METRICS = ("HR@5", "HR@10", "NDCG@5", "NDCG@10")  # what every table of the project reports, in this order


def target_rank(ranked: Sequence, target) -> int | None:
    """1-based rank of ``target`` in ``ranked``, or None when absent."""
    for r, item in enumerate(ranked, start=1):
        if item == target:
            return r
    return None


def hit(rank: int | None, k: int) -> float:
    return 1.0 if rank is not None and rank <= k else 0.0


def ndcg(rank: int | None, k: int) -> float:
    return 1.0 / math.log2(rank + 1) if rank is not None and rank <= k else 0.0


def per_user_values(ranked_lists: Sequence[Sequence], targets: Sequence, ks: Sequence[int] = (5, 10)
                    ) -> dict[str, list[float]]:
    """Each user's HR@k and NDCG@k (in the order HR@5, NDCG@5, HR@10, ...): what the means and their standard
    errors are taken over, each target's rank found once."""
    if len(ranked_lists) != len(targets):
        raise ValueError(f"{len(ranked_lists)} ranked lists for {len(targets)} targets")
    ranks = [target_rank(r, t) for r, t in zip(ranked_lists, targets)]
    return {f"{name}@{k}": [f(r, k) for r in ranks] for k in ks for name, f in (("HR", hit), ("NDCG", ndcg))}


def _means(values: dict[str, list[float]], users: int) -> dict[str, float]:
    n = max(users, 1)
    return {"users": users, **{name: sum(v) / n for name, v in values.items()}}


def _standard_errors(values: dict[str, list[float]]) -> dict[str, float]:
    """The users' sample standard deviation over the root of their number, per metric: how far a figure may move by
    the draw of users alone."""
    out = {}
    for name, v in values.items():
        n = len(v)
        mean = sum(v) / max(n, 1)
        out[name] = math.sqrt(sum((x - mean) ** 2 for x in v) / max(n - 1, 1) / max(n, 1))
    return out


def leave_one_out_metrics(ranked_lists: Sequence[Sequence], targets: Sequence, ks: Sequence[int] = (5, 10)
                          ) -> dict[str, float]:
    """Mean HR@k and NDCG@k over users; ``ranked_lists[u]`` must hold at least max(ks) items when available."""
    return _means(per_user_values(ranked_lists, targets, ks), len(targets))


def standard_errors(ranked_lists: Sequence[Sequence], targets: Sequence, ks: Sequence[int] = (5, 10)
                    ) -> dict[str, float]:
    """The standard error of each mean in :func:`leave_one_out_metrics`."""
    return _standard_errors(per_user_values(ranked_lists, targets, ks))


def ranking_report(ranked_lists: Sequence[Sequence], targets: Sequence, catalog_size: int,
                   ks: Sequence[int] = (5, 10)) -> dict:
    """What every method's test reports: the leave-one-out means, their standard errors (``se``) and the share of
    the catalog its top-10 lists use (``coverage@10``: a ranking collapsed onto a few items shows here first); each
    target's rank found once."""
    values = per_user_values(ranked_lists, targets, ks)
    return {**_means(values, len(targets)), "se": _standard_errors(values),
            "coverage@10": coverage(ranked_lists, catalog_size)}


def hit_rates_by_rank(ranked_lists: Sequence[Sequence], targets: Sequence, depth: int) -> list[float]:
    """The share of users whose target is at each rank 1..``depth``, fitted non-increasing (pool-adjacent-violators):
    what a ranking's rank is worth, for the repeat mode (``recommender.repeat_mode``); raw counts at deep ranks are
    a few hits each, and a deeper rank is never worth more."""
    n = max(len(targets), 1)
    counts = [0] * depth
    for r, t in zip(ranked_lists, targets):
        rank = target_rank(r, t)
        if rank is not None and rank <= depth:
            counts[rank - 1] += 1
    blocks: list[list[float]] = []  # [mean, size], each block's mean above the next one's
    for c in counts:
        blocks.append([c / n, 1])
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            (m1, s1), (m2, s2) = blocks.pop(-2), blocks.pop()
            blocks.append([(m1 * s1 + m2 * s2) / (s1 + s2), s1 + s2])
    return [m for m, size in blocks for _ in range(int(size))]


def coverage(ranked_lists: Sequence[Sequence], catalog_size: int, k: int = 10) -> float:
    """The share of the catalog that is in at least one user's top ``k``: how a collapse shows (a recommender
    that writes the same few IDs for everyone; on the Yelp slice ours recommended 36 of 13,170 items)."""
    return len({i for r in ranked_lists for i in r[:k]}) / max(catalog_size, 1)


def id_quality(texts: Sequence[str], ids: Sequence[str]) -> dict[str, float]:
    """How much the IDs read their items: the mean share of an ID's words that occur in the item's own text, the
    share of IDs made only of such words, and words per ID. IDs of a held-out catalog that do not come from its
    text (generic words, tags added to make them unique) give a zero-shot recommender nothing to read."""
    from idgen.tags import word_overlap, words

    shares = [word_overlap(text, id_) for text, id_ in zip(texts, ids)]
    n = max(len(shares), 1)
    return {"items": len(shares), "id_words_in_text": sum(shares) / n,
            "ids_all_words_in_text": sum(s == 1.0 for s in shares) / n,
            "words_per_id": sum(len(words(i)) for i in ids) / n}
