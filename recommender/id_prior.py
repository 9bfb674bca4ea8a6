"""ID prior correction: rank items by how much the user's history raises the model's score of their IDs, not by the
score alone.

A recommender trained on some catalog learns which ID shapes it writes often (its training IDs, the pretraining
domains' words); an ID it never wrote - a new item, every item of an unseen domain - starts far below them whatever
the history says (on Scientific the model scores the IDs of new items 2.2 nats per token lower than known ones after
an empty history). Subtracting ``beta`` x the score the model gives each ID after a prompt with no history (pointwise
mutual information between history and ID at ``beta = 1``, the surface-form correction of Holtzman et al. 2021)
removes that prior. ``beta`` is chosen on validation (0 leaves the scores as they were): on a validation *domain*
for zero-shot use, where every item is unseen as in the target.
"""
from __future__ import annotations

from typing import Iterator, Mapping, Sequence

from recommender.prompts import EVAL_TEMPLATE, empty_history_prompt
from recommender.repeats import Ranked, scored_histories

BETA_GRID = [0.25, 0.5, 0.75, 1.0]  # what the benchmarks choose beta among, on validation


def null_scores(model, tokenizer, item_ids: Sequence[str], tokens_of: Mapping[str, Sequence[int]], batch_items: int,
                max_source_tokens: int, length_penalty: float = 1.0, template: int = EVAL_TEMPLATE
                ) -> dict[str, float]:
    """The model's score of every item's ID after the empty-history prompt, ``batch_items`` IDs per forward pass."""
    prompt = empty_history_prompt(template)
    chunks = [list(item_ids[start:start + batch_items]) for start in range(0, len(item_ids), batch_items)]
    scores: dict[str, float] = {}
    for chunk in chunks:  # scored_histories reads a history most recent first: reversed, each chunk keeps its order
        (ranked,) = scored_histories(model, tokenizer, [prompt], [chunk[::-1]], tokens_of, 1, max_source_tokens,
                                     length_penalty)
        scores.update(ranked)
    return scores


def corrected(ranked: Ranked, null: Mapping[str, float], beta: float) -> Ranked:
    """``ranked`` with each score lowered by ``beta`` x its item's null score, best first (items the null scores
    do not know keep their score)."""
    return sorted(((i, s - beta * null.get(i, 0.0)) for i, s in ranked), key=lambda kv: -kv[1])


def corrected_all(lists: Sequence[Ranked], null: Mapping[str, float], beta: float | None) -> Iterator[Ranked]:
    """Every list corrected (``beta`` None or 0: unchanged)."""
    for ranked in lists:
        yield corrected(ranked, null, beta) if beta else list(ranked)
