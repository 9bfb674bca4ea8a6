"""A prefix trie over the token ids of all item IDs, stored as tensors for one vectorized lookup per step.

Each ID's tokens end with the end-of-sequence token, so an ID that is a prefix of another is still its own leaf.
Edges are kept sorted by ``parent * vocab + token`` (CSR by parent): the children of node ``n`` are the edges in
``offsets[n]:offsets[n+1]``. For any batch of beams (one node each), :meth:`allowed_mask` gives the allowed next
tokens and :meth:`advance` the next nodes, both with a few tensor operations and no Python loop over beams.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

DEAD = -1  # the node of a beam that left the trie (only reachable through a disallowed token)


@dataclass
class Trie:
    offsets: torch.Tensor       # (nodes + 1,) CSR row pointers
    child_token: torch.Tensor   # (edges,) token of each edge
    child_node: torch.Tensor    # (edges,) node each edge leads to
    edge_key: torch.Tensor      # (edges,) parent * vocab + token, sorted: for searchsorted
    leaf_item: torch.Tensor     # (nodes,) item index at the node reached by end-of-sequence, else -1
    vocab_size: int
    max_depth: int

    @classmethod
    def build(cls, sequences: Sequence[Sequence[int]], eos_token_id: int, vocab_size: int) -> "Trie":
        """``sequences[i]`` are item i's ID tokens (without end token). Duplicates are an error."""
        children: list[dict[int, int]] = [{}]
        leaf: dict[int, int] = {}
        max_depth = 0
        for item, seq in enumerate(sequences):
            node = 0
            for tok in list(seq) + [eos_token_id]:
                if not 0 <= tok < vocab_size:
                    raise ValueError(f"item {item}: token {tok} outside the vocabulary of {vocab_size}")
                nxt = children[node].get(tok)
                if nxt is None:
                    nxt = len(children)
                    children[node][tok] = nxt
                    children.append({})
                node = nxt
            if node in leaf:
                raise ValueError(f"items {leaf[node]} and {item} have the same ID tokens {list(seq)}")
            leaf[node] = item
            max_depth = max(max_depth, len(seq) + 1)
        counts = torch.tensor([len(c) for c in children], dtype=torch.long)
        offsets = torch.zeros(len(children) + 1, dtype=torch.long)
        offsets[1:] = counts.cumsum(0)
        toks = [t for c in children for t in sorted(c)]
        nodes = [c[t] for c in children for t in sorted(c)]
        parents = torch.arange(len(children)).repeat_interleave(counts)
        child_token = torch.tensor(toks, dtype=torch.long)
        leaf_item = torch.full((len(children),), -1, dtype=torch.long)
        for node, item in leaf.items():
            leaf_item[node] = item
        return cls(offsets, child_token, torch.tensor(nodes, dtype=torch.long), parents * vocab_size + child_token,
                   leaf_item, vocab_size, max_depth)

    def to(self, device: torch.device | str) -> "Trie":
        return Trie(*(getattr(self, f).to(device) for f in ("offsets", "child_token", "child_node", "edge_key",
                                                             "leaf_item")), self.vocab_size, self.max_depth)

    @property
    def num_nodes(self) -> int:
        return self.leaf_item.shape[0]

    def edges(self, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every allowed (beam, next token) pair: beams ascending, tokens ascending within a beam."""
        live = nodes >= 0
        safe = nodes.clamp(min=0)
        start = self.offsets[safe]
        lens = torch.where(live, self.offsets[safe + 1] - start, torch.zeros_like(start))
        rows = torch.repeat_interleave(torch.arange(nodes.shape[0], device=nodes.device), lens)
        first = torch.repeat_interleave(start - (lens.cumsum(0) - lens), lens)
        return rows, self.child_token[torch.arange(rows.shape[0], device=nodes.device) + first]

    def allowed_mask(self, nodes: torch.Tensor) -> torch.Tensor:
        """(beams, vocab) bool: which tokens continue an ID from each beam's node (none for DEAD)."""
        rows, tokens = self.edges(nodes)
        mask = torch.zeros((nodes.shape[0], self.vocab_size), dtype=torch.bool, device=nodes.device)
        mask[rows, tokens] = True
        return mask

    def advance(self, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Next node of each beam after ``tokens``; DEAD where the token is not a child."""
        key = nodes.clamp(min=0) * self.vocab_size + tokens
        idx = torch.searchsorted(self.edge_key, key).clamp(max=max(self.edge_key.shape[0] - 1, 0))
        hit = (self.edge_key[idx] == key) & (nodes >= 0)
        return torch.where(hit, self.child_node[idx], torch.full_like(nodes, DEAD))

    def items_at(self, nodes: torch.Tensor) -> torch.Tensor:
        """Item index at each node (a node reached by end-of-sequence), else -1."""
        return torch.where(nodes >= 0, self.leaf_item[nodes.clamp(min=0)], torch.full_like(nodes, -1))


class PythonTrie:
    """A plain dict trie for ``prefix_allowed_tokens_fn``: what the stock approach does (the baseline and the
    reference in tests)."""

    def __init__(self, sequences: Sequence[Sequence[int]], eos_token_id: int):
        self.root: dict = {}
        for seq in sequences:
            node = self.root
            for tok in list(seq) + [eos_token_id]:
                node = node.setdefault(tok, {})

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        node = self.root
        for tok in prefix:
            node = node.get(tok)
            if node is None:
                return []
        return list(node.keys())

    def prefix_allowed_tokens_fn(self, pad_token_id: int):
        """The callback ``generate`` takes: the decoder start is dropped; a finished beam may only pad."""
        def fn(batch_id: int, sent) -> list[int]:
            return self.allowed(sent[1:].tolist()) or [pad_token_id]
        return fn
