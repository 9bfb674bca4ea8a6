"""Repeat-aware ranking: the user's own history items, scored by the recommender, join its beams with a bias.

Trained on next-item samples where repeats are rare, a generative recommender learns to write IDs the user does not
have yet; beam search then hardly ever returns a history item, even on data full of repeat visits (the Yelp slice:
7% of test targets are places the user already visited, 3% of training samples). RepeatNet (Ren et al., AAAI 2019)
mixes a repeat mode over the history with an explore mode over all items; here the explore mode is the beam search,
the repeat mode is the model's own teacher-forced score of each history item (the beam score, so both rank
together), and the mix is one additive bias, a log prior of repeating, chosen on validation (off where repeats do
not pay).
"""
from __future__ import annotations

import math
from typing import Iterator, Mapping, Sequence

from seq2seq.scoring import target_scores

Ranked = list[tuple[str, float]]


def merge_repeats(beams: Ranked, history: Ranked, bias: float, k: int | None = None) -> Ranked:
    """``beams`` and the ``history`` items at their score + ``bias`` (an item in both keeps the higher score),
    best first, the first ``k`` (default: as many as ``beams``)."""
    pool = dict(beams)
    for item, score in history:
        pool[item] = max(pool.get(item, -math.inf), score + bias)
    ranked = sorted(pool.items(), key=lambda kv: -kv[1])  # stable: ties keep the beams' order
    return ranked[: len(beams) if k is None else k]


def scored_histories(model, tokenizer, prompts: Sequence[str], histories: Sequence[Sequence[str]],
                     tokens_of: Mapping[str, Sequence[int]], batch_size: int, max_source_tokens: int,
                     length_penalty: float = 1.0) -> Iterator[Ranked]:
    """Per prompt, in order, each distinct item of its history that ``tokens_of`` knows (most recent first) with
    the beam score the model gives its ID after that prompt."""
    device = next(model.parameters()).device
    for start in range(0, len(prompts), batch_size):
        enc = tokenizer(list(prompts[start:start + batch_size]), truncation=True, max_length=max_source_tokens,
                        padding=True, return_tensors="pt").to(device)
        items = [[i for i in dict.fromkeys(reversed(h)) if i in tokens_of]
                 for h in histories[start:start + batch_size]]
        owners = [n for n, row in enumerate(items) for _ in row]
        scores = iter(target_scores(model, enc["input_ids"], enc["attention_mask"], owners,
                                    [tokens_of[i] for row in items for i in row], tokenizer.eos_token_id,
                                    length_penalty).tolist())
        for row in items:
            yield [(i, next(scores)) for i in row]
