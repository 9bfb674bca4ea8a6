"""Recommendation by trie-constrained beam search: per user, the top-k items with their scores.

Plain beam search is our diverse beam search with one group and no penalty; the prefix trie (tensors) restricts
every beam of every user in one lookup per step. Termination follows transformers' ``early_stopping=True``: a user
is done once ``beams`` IDs are complete, so results equal ``generate(num_beams=..., prefix_allowed_tokens_fn=...,
early_stopping=True)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Iterator, Sequence

import torch

from recommender.trie import DEAD, Trie
from seq2seq.beam_search import DiverseBeamConfig, diverse_beam_search


class TrieConstraint:
    """The beams' current trie nodes; allowed tokens and moves come from the tensor trie."""

    def __init__(self, trie: Trie, rows: int, device: torch.device):
        self.trie = trie
        self.nodes = torch.zeros(rows, dtype=torch.long, device=device)

    def edges(self, alive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.trie.edges(torch.where(alive, self.nodes, torch.full_like(self.nodes, DEAD)))

    def advance(self, rows: torch.Tensor, tokens: torch.Tensor) -> None:
        self.nodes = self.trie.advance(self.nodes[rows], tokens)


@dataclass
class TopK:
    items: torch.Tensor   # (users, k) item indices, best first; -1 where fewer were found
    scores: torch.Tensor  # (users, k) length-normalized log-probabilities


@torch.inference_mode()
def recommend(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, trie: Trie, beams: int, k: int,
              eos_token_id: int, pad_token_id: int, length_penalty: float = 1.0) -> TopK:
    """Top-``k`` items for each row of ``input_ids`` (``k <= beams``)."""
    if k > beams:
        raise ValueError(f"k={k} needs at least as many beams (got {beams})")
    n, dev = input_ids.shape[0], input_ids.device
    cfg = DiverseBeamConfig(groups=1, beams_per_group=beams, diversity_penalty=0.0, min_new_tokens=0,
                            max_new_tokens=trie.max_depth - 1, length_penalty=length_penalty, early_stopping=True)
    res = diverse_beam_search(model, input_ids, attention_mask, cfg, eos_token_id, pad_token_id,
                              banned_token_ids=[], constraint=TrieConstraint(trie, n * beams, dev))
    tokens, lengths = res.tokens[:, :k], res.lengths[:, :k]
    nodes = torch.zeros(n * k, dtype=torch.long, device=dev)
    flat, flat_len = tokens.reshape(n * k, -1), lengths.reshape(-1)
    for t in range(flat.shape[1]):
        nodes = torch.where(t < flat_len, trie.advance(nodes, flat[:, t]), nodes)
    items = trie.items_at(trie.advance(nodes, torch.full_like(nodes, eos_token_id))).view(n, k)
    scores = res.scores[:, :k]
    items = torch.where(torch.isfinite(scores), items, torch.full_like(items, -1))
    return TopK(items=items, scores=scores)


def ranked_items(model, tokenizer, prompts: Sequence[str], trie: Trie, item_ids: Sequence[str], beams: int,
                 batch_size: int, max_source_tokens: int, length_penalty: float = 1.0,
                 exclude: Sequence[Collection[str]] | None = None) -> Iterator[list[tuple[str, float]]]:
    """Per prompt, in order, its ranked (item, score) pairs, best first, without the items of its ``exclude`` set:
    what evaluation and serving both read from the decoder, batch by batch."""
    device = next(model.parameters()).device
    for start in range(0, len(prompts), batch_size):
        enc = tokenizer(list(prompts[start:start + batch_size]), truncation=True, max_length=max_source_tokens,
                        padding=True, return_tensors="pt").to(device)
        top = recommend(model, enc["input_ids"], enc["attention_mask"], trie, beams, beams, tokenizer.eos_token_id,
                        tokenizer.pad_token_id, length_penalty)
        for n, (row, scores) in enumerate(zip(top.items.tolist(), top.scores.tolist())):
            seen = exclude[start + n] if exclude is not None else ()
            yield [(item_ids[i], v) for i, v in zip(row, scores) if i >= 0 and item_ids[i] not in seen]
