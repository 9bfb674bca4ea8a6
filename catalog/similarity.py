"""Text similarity between items: TF-IDF of their rendered text, and a user's profile as the mean vector of their
last items. What the text-similarity baseline ranks by, and the prior a recommender may add to its beam scores
(``recommender.text_prior``): both read the same numbers from here."""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterator, Sequence

import torch

RECENT = 3  # a profile is the mean of the user's last RECENT items


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def tfidf_matrix(texts: Sequence[str]) -> torch.Tensor:
    """Sparse (texts, vocabulary) TF-IDF rows, L2-normalized: idf = log(N / df) + 1, term counts as tf."""
    bags = [Counter(_words(t)) for t in texts]
    df = Counter(w for b in bags for w in b)
    vocab = {w: j for j, w in enumerate(sorted(df))}
    n = len(texts)
    rows, cols, vals = [], [], []
    for i, bag in enumerate(bags):
        weights = {w: c * (math.log(n / df[w]) + 1.0) for w, c in bag.items()}
        norm = math.sqrt(sum(v * v for v in weights.values())) or 1.0
        for w, v in weights.items():
            rows.append(i)
            cols.append(vocab[w])
            vals.append(v / norm)
    return torch.sparse_coo_tensor([rows, cols], vals, (n, max(len(vocab), 1)), check_invariants=True).coalesce()


class TextSimilarity:
    """Cosine similarity of every item to users' profiles, a batch of users at a time (dense rows of the catalog's
    size: batch x items floats)."""

    def __init__(self, texts: Sequence[str], recent: int = RECENT):
        self.x = tfidf_matrix(texts)
        self.xt = self.x.t().coalesce()
        self.items, self.recent = len(texts), recent

    def scores(self, histories: Sequence[Sequence[int]]) -> torch.Tensor:
        """(users, items) cosine of each item to the mean TF-IDF vector of the user's last ``recent`` items
        (``histories``: item rows, oldest first)."""
        q = torch.zeros(len(histories), self.items)
        for r, h in enumerate(histories):
            for i in h[-self.recent:]:
                q[r, i] += 1.0 / len(h[-self.recent:])
        profile = torch.sparse.mm(self.xt, q.t()).t()       # (users, vocab): mean of the recent items' vectors
        return torch.sparse.mm(self.x, profile.t()).t()     # (users, items)

    def batches(self, histories: Sequence[Sequence[int]], batch: int = 256) -> Iterator[torch.Tensor]:
        for start in range(0, len(histories), batch):
            yield self.scores(histories[start:start + batch])

    def ranking(self, histories: Sequence[Sequence[int]], k: int, batch: int = 256,
                among: Sequence[int] | None = None) -> list[list[int]]:
        """Per history (item rows, oldest first), the top-``k`` item rows by cosine similarity to the mean TF-IDF
        vector of its last ``recent`` items, history items excluded (they would top their own list); with
        ``among``, only those rows are ranked (the new items of a catalog, say), the vocabulary still the whole
        catalog's."""
        outside = None
        if among is not None:
            outside = torch.ones(self.items, dtype=torch.bool)
            outside[list(among)] = False
        width = self.items if among is None else len(set(among))
        out: list[list[int]] = []
        for start, scores in zip(range(0, len(histories), batch), self.batches(histories, batch)):
            for r, h in enumerate(histories[start:start + batch]):
                scores[r, list(h)] = float("-inf")
            if outside is not None:
                scores[:, outside] = float("-inf")
            tops = scores.topk(min(k, width), dim=1, sorted=True)
            out.extend([[i for i, v in zip(rows, vals) if outside is None or v != float("-inf")]
                        for rows, vals in zip(tops.indices.tolist(), tops.values.tolist())])
        return out


def text_similarity_ranking(item_texts: Sequence[str], histories: Sequence[Sequence[int]], k: int,
                            recent: int = RECENT, batch: int = 256, among: Sequence[int] | None = None
                            ) -> list[list[int]]:
    """:meth:`TextSimilarity.ranking` over a TF-IDF matrix built for this one call."""
    return TextSimilarity(item_texts, recent).ranking(histories, k, batch, among)
