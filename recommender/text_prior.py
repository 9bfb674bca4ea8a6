"""A text-similarity prior on the recommender's beam scores: items whose text is close to the user's last items
get ``weight x cosine`` added to the model's score, and the most similar items join the beams at the score the model
gives their IDs.

A recommender that has only learned its training IDs as keys writes few IDs of a catalog it never saw (zero-shot,
new items), yet next items often share words with the last ones (brand, series, kind). This lever lets the model's
own scores rank the text-similar items it would not have reached by beam search; the weight is chosen on the
validation of the data the model trained on (never the evaluated dataset's test), and 0 leaves the beams as they
were. A ranking with the prior is reported beside ours without it: it is ours plus a content signal, not ours alone.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from catalog.similarity import TextSimilarity
from recommender.repeats import Ranked

# what the benchmarks choose the weight among, on validation (up to weights where the text's order dominates)
WEIGHT_GRID = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]


def prior_candidates(sim: TextSimilarity, histories: Sequence[Sequence[int]], beams: Sequence[Sequence[int]], k: int,
                     batch: int = 256, barred: Sequence[int] = ()) -> tuple[list[list[int]], list[dict[int, float]]]:
    """Per user: the ``k`` item rows most similar to their last items (history and ``barred`` rows excluded: items
    that may not be recommended), and the similarity of every row the prior may need (those and the beam items).
    History items get 0: the profile is made of them, so their likeness to it says nothing about a next item (a
    repeat is the repeat bias's to rank); lifting them put the user's last items on top at large weights."""
    candidates, similarity = [], []
    for start, scores in zip(range(0, len(histories), batch), sim.batches(histories, batch)):
        for r, h in enumerate(histories[start:start + batch]):
            row = scores[r]
            near = row.clone()
            near[list(h) + list(barred)] = -math.inf
            top = near.topk(min(k, len(near))).indices.tolist()
            keep = set(top) | set(beams[start + r])
            candidates.append(top)
            similarity.append({i: float(row[i]) for i in keep} | {i: 0.0 for i in h})
    return candidates, similarity


def merge_text_prior(beams: Ranked, candidates: Ranked, similarity: Mapping[str, float], weight: float,
                     k: int | None = None) -> Ranked:
    """``beams`` and the model-scored ``candidates`` (an item in both keeps the higher score), each at its score +
    ``weight`` x its similarity, best first, the first ``k`` (default: as many as ``beams``)."""
    pool = dict(beams)
    for item, score in candidates:
        pool[item] = max(pool.get(item, -math.inf), score)
    ranked = sorted(((i, s + weight * similarity.get(i, 0.0)) for i, s in pool.items()), key=lambda kv: -kv[1])
    return ranked[: len(beams) if k is None else k]
