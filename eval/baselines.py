"""Baselines in the same harness. Popularity: every user gets the items most often seen in training targets and
histories (a sanity floor for every report). Text similarity: items ranked by the TF-IDF cosine of their text to
the text of the user's recent items (the content-based baseline for items no interaction has been seen for).
Markov chain: the most frequent successors of the user's last item, then popular items (first-order item-to-item
transitions; on the Amazon datasets here about as strong as SASRec, so it tells how item-to-item a dataset is).
Recent items: the user's own history, most recent first, then popular items (repeat consumption: on Yelp 7% of the
test targets are businesses the user already reviewed, and this list alone beats SASRec there)."""
from __future__ import annotations

import math
from collections import Counter
from functools import partial
from typing import Sequence

from catalog.similarity import text_similarity_ranking
from catalog.split import samples


def _visible(sequences: Sequence[Sequence[str]], split: str) -> list[Sequence[str]]:
    """What a model may see before ``split`` targets (no test leakage): for test, everything but each user's last
    item; for valid, everything but the last two."""
    cut = 1 if split == "test" else 2
    return [s[: max(len(s) - cut, 0)] for s in sequences]


def _top(counts: Counter, k: int) -> list[str]:
    return [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def popularity_ranking(sequences: Sequence[Sequence[str]], split: str, k: int) -> list[str]:
    """Top-k items by interaction count in what the model may see before ``split`` targets."""
    return _top(Counter(i for s in _visible(sequences, split) for i in s), k)


def _then_popular(tops: list[list[str]], sequences: Sequence[Sequence[str]], split: str, k: int) -> list[list[str]]:
    """Each list filled up to ``k`` with the most popular items it lacks (what every list-based baseline falls back
    on when it knows fewer than ``k`` items)."""
    popular = popularity_ranking(sequences, split, 2 * k)
    return [(top + [i for i in popular if i not in top])[:k] for top in tops]


def markov_rankings(sequences: Sequence[Sequence[str]], split: str, k: int, training_only: bool = False
                    ) -> list[list[str]]:
    """Per ``split`` sample: the top-k successors of its last history item, counted over the visible transitions
    of every user (a -> b when b came right after a), then the most popular items not already listed.

    ``training_only`` counts only the transitions into training targets, the data the trained models (ours,
    SASRec) learn from: for test, the visible transitions also hold each user's move into its validation item, which
    they never train on (on our splits, 7-14% of the Markov chain's test NDCG@10 comes from those)."""
    successors: dict[str, Counter] = {}
    seen = "valid" if training_only else split  # the split whose visible interactions are counted
    for s in _visible(sequences, seen):
        for a, b in zip(s[:-1], s[1:]):
            successors.setdefault(a, Counter())[b] += 1
    tops = [_top(successors.get(sample.history[-1], Counter()), k) for sample in samples(sequences, split)]
    return _then_popular(tops, sequences, seen, k)


def recent_rankings(sequences: Sequence[Sequence[str]], split: str, k: int) -> list[list[str]]:
    """Per ``split`` sample: the items of its whole history, most recent first, each once, then the most popular
    items not already listed."""
    longest = max((len(s) for s in sequences), default=1)
    tops = [list(dict.fromkeys(reversed(sample.history)))[:k] for sample in samples(sequences, split, longest)]
    return _then_popular(tops, sequences, split, k)


def _ranking_metrics(rankings, sequences: Sequence[Sequence[str]], split: str, ks) -> dict:
    """``ranking_report`` of a list baseline (its coverage over the items the sequences hold: the catalog, for
    datasets whose every item has interactions)."""
    from eval.metrics import ranking_report

    items = len({i for seq in sequences for i in seq})
    return ranking_report(rankings(sequences, split, max(ks)), [s.target for s in samples(sequences, split)], items,
                          ks)


def markov_metrics(sequences: Sequence[Sequence[str]], split: str, ks=(5, 10)) -> dict[str, float]:
    return _ranking_metrics(markov_rankings, sequences, split, ks)


def markov_training_metrics(sequences: Sequence[Sequence[str]], split: str, ks=(5, 10)) -> dict[str, float]:
    """The Markov chain on the trained models' data (``markov_rankings``' ``training_only``): a same-data row."""
    return _ranking_metrics(partial(markov_rankings, training_only=True), sequences, split, ks)


def recent_metrics(sequences: Sequence[Sequence[str]], split: str, ks=(5, 10)) -> dict[str, float]:
    return _ranking_metrics(recent_rankings, sequences, split, ks)


def popularity_metrics(sequences: Sequence[Sequence[str]], split: str, ks=(5, 10), max_users: int = 0
                       ) -> dict[str, float]:
    """Popularity's metrics over the ``split`` samples (the first ``max_users`` of them when > 0: the users an
    evaluation limited the same way scored, so that both are compared on the same users)."""
    from eval.metrics import leave_one_out_metrics

    top = popularity_ranking(sequences, split, max(ks))
    targets = [s.target for s in samples(sequences, split)]
    targets = targets[:max_users] if max_users > 0 else targets
    return leave_one_out_metrics([top] * len(targets), targets, ks)


def random_metrics(items: int, users: int, ks=(5, 10)) -> dict[str, float]:
    """The expected metrics of a uniformly random ranking of ``items`` (analytic): HR@k = k / n and
    NDCG@k = sum over ranks r <= k of 1 / (n log2(r + 1)). The floor every zero-shot figure is read against."""
    n = max(items, 1)
    out: dict[str, float] = {"users": users}
    for k in ks:
        out[f"HR@{k}"] = min(k, n) / n
        out[f"NDCG@{k}"] = sum(1.0 / (n * math.log2(r + 1)) for r in range(1, min(k, n) + 1))
    return out


def text_similarity_rankings(item_ids: Sequence[str], texts: Sequence[str], sequences: Sequence[Sequence[str]],
                             split: str, k: int, max_users: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    """Per ``split`` sample (the first ``max_users`` when > 0), from one pass of :func:`text_similarity_ranking`
    over the items' text (no interaction beyond the user's own history): its top ``k``, and the user's history
    first, most recent first (repeat consumption), then that list (it holds no history item)."""
    row = {item: r for r, item in enumerate(item_ids)}
    longest = max((len(s) for s in sequences), default=1)
    todo = list(samples(sequences, split, longest))
    todo = todo[:max_users] if max_users > 0 else todo
    similar = [[item_ids[r] for r in rows]
               for rows in text_similarity_ranking(texts, [[row[i] for i in s.history] for s in todo], k)]
    recent = [(list(dict.fromkeys(reversed(s.history))) + top)[:k] for s, top in zip(todo, similar)]
    return similar, recent


def text_similarity_metrics(item_ids: Sequence[str], texts: Sequence[str], sequences: Sequence[Sequence[str]],
                            split: str, ks=(5, 10)) -> dict[str, float]:
    """Text similarity's metrics over every ``split`` sample (an in-domain table's row: it uses no interaction
    beyond the user's own history, and is the strongest baseline on some of our datasets)."""
    from eval.metrics import leave_one_out_metrics

    similar, _ = text_similarity_rankings(item_ids, texts, sequences, split, max(ks))
    return leave_one_out_metrics(similar, [s.target for s in samples(sequences, split)], ks)


def zero_shot_baselines(item_ids: Sequence[str], texts: Sequence[str], sequences: Sequence[Sequence[str]],
                        split: str, max_users: int = 0, ks=(5, 10)) -> dict[str, dict]:
    """Baselines on the users a zero-shot evaluation scores (the first ``max_users`` ``split`` samples when > 0).
    Zero-shot peers use none of the dataset's interactions beyond each user's own history: random (analytic), text
    similarity, recent items then text similarity. In-domain references (``in_domain``: counted on this dataset's
    training interactions, which a zero-shot model never saw): popularity, the Markov chain."""
    from eval.metrics import leave_one_out_metrics

    targets = [s.target for s in samples(sequences, split)]
    targets = targets[:max_users] if max_users > 0 else targets
    k = max(ks)

    def scored(tops: list[list[str]], **label) -> dict:
        return leave_one_out_metrics(tops[:len(targets)], targets, ks) | label

    by_text, recent_then_text = text_similarity_rankings(item_ids, texts, sequences, split, k, max_users)
    return {
        "random": random_metrics(len(item_ids), len(targets), ks) | {"in_domain": False},
        "text_similarity": scored(by_text, in_domain=False),
        "recent_then_text": scored(recent_then_text, in_domain=False),
        "popularity": scored([popularity_ranking(sequences, split, k)] * len(targets), in_domain=True),
        "markov": scored(markov_rankings(sequences, split, k), in_domain=True)}
