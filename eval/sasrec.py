"""SASRec (Kang & McAuley, 2018) trained with full-softmax cross-entropy over all items: the supervised in-domain
reference that generative models are measured against. Trained on a dataset's own training positions, selected on
validation NDCG@10, scored on test with our metric code (eval.metrics), on the same users as every other method.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from catalog.split import samples
from eval.metrics import leave_one_out_metrics


@dataclass
class SASRecConfig:
    dim: int = 64
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.2
    max_len: int = 50
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "cpu"


class SASRec(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig):
        super().__init__()
        self.items = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)  # item row r -> index r + 1; 0 = padding
        self.pos = nn.Embedding(cfg.max_len, cfg.dim)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, cfg.dim * 4, cfg.dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.blocks, enable_nested_tensor=False)
        self.norm, self.drop = nn.LayerNorm(cfg.dim), nn.Dropout(cfg.dropout)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(batch, length) left-padded item indices -> (batch, length, items + 1) logits over all items."""
        L = seq.shape[1]
        h = self.drop(self.items(seq) * self.items.embedding_dim ** 0.5 + self.pos(torch.arange(L, device=seq.device)))
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool, device=seq.device), 1)
        h = self.norm(self.encoder(h, mask=causal, src_key_padding_mask=seq == 0, is_causal=True))
        return h @ self.items.weight.T


def _left_pad(seqs: list[list[int]], L: int) -> torch.Tensor:
    return torch.tensor([[0] * (L - len(s[-L:])) + s[-L:] for s in seqs])


def _rank(model: SASRec, histories: list[list[int]], k: int, cfg: SASRecConfig) -> list[list[int]]:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(histories), 256):
            logits = model(_left_pad(histories[i:i + 256], cfg.max_len).to(cfg.device))[:, -1]
            logits[:, 0] = float("-inf")
            out += (logits.topk(k, dim=-1).indices - 1).tolist()
    return out


def train_sasrec(sequences: Sequence[Sequence[str]], item_ids: list[str], cfg: SASRecConfig) -> dict:
    """Train on training positions, select the epoch by validation NDCG@10, return valid and test metrics."""
    torch.manual_seed(cfg.seed)
    index = {i: r + 1 for r, i in enumerate(item_ids)}
    seqs = [[index[i] for i in s] for s in sequences]
    train = [s[:-2] for s in seqs if len(s) >= 3 and len(s[:-2]) >= 2]
    model = SASRec(len(item_ids), cfg).to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98))
    valid = list(samples(seqs, "valid", cfg.max_len))
    test = list(samples(seqs, "test", cfg.max_len))
    rng = random.Random(cfg.seed)
    best, best_state, history = -1.0, None, []
    for epoch in range(cfg.epochs):
        model.train()
        rng.shuffle(train)
        for i in range(0, len(train), cfg.batch_size):
            batch = train[i:i + cfg.batch_size]
            x = _left_pad([s[:-1] for s in batch], cfg.max_len).to(cfg.device)
            y = _left_pad([s[1:] for s in batch], cfg.max_len).to(cfg.device)
            loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten(), ignore_index=0)
            opt.zero_grad()
            loss.backward()
            opt.step()
        ranked = _rank(model, [list(s.history) for s in valid], 10, cfg)
        m = leave_one_out_metrics(ranked, [s.target - 1 for s in valid])
        history.append({"epoch": epoch, "loss": loss.item(), **m})
        if m["NDCG@10"] > best:
            best, best_state = m["NDCG@10"], {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    valid_m = leave_one_out_metrics(_rank(model, [list(s.history) for s in valid], 10, cfg),
                                    [s.target - 1 for s in valid])
    test_m = leave_one_out_metrics(_rank(model, [list(s.history) for s in test], 10, cfg),
                                   [s.target - 1 for s in test])
    return {"valid": valid_m, "test": test_m, "best_epoch": max(history, key=lambda h: h["NDCG@10"])["epoch"],
            "history": history}
