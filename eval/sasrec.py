"""SASRec (Kang & McAuley, 2018) with full-softmax cross-entropy: the supervised in-domain reference that generative
models are measured against, built to match the reference implementation (RecBole's SASRec with ``loss_type: CE``).

As in RecBole: post-norm Transformer blocks (attention and GELU feed-forward, each followed by dropout, a residual
and LayerNorm with eps 1e-12), item and position embeddings summed, normalized and dropped out, weights drawn from
N(0, 0.02); right-padded histories of at most ``max_len`` items whose last real position predicts the next item;
attention masks that are additive and finite (-10000), so no row is ever fully masked; one training sample per
training position (the history before it, loss on its target: RecBole's prefix augmentation); Adam; the epoch with
the best validation NDCG@10 is kept, training stops after ``patience`` epochs without improvement.

Why not ``torch.nn.TransformerEncoder``: with left padding, a causal mask and a key-padding mask, the padded rows
have every key masked; in eval mode its fast path then returns NaN for the whole batch (2+ heads), so validation
ranked NaN scores and training "collapsed" at epoch 0 (tested in tests/test_sasrec.py).

Scored on the same users and split as every other method, with our metric code (eval.metrics).
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

from catalog.split import samples
from eval.metrics import ranking_report
from infra.device import resolve_device
from infra.progress import progress

log = logging.getLogger("idgenrec.sasrec")
TRAIN_ON = ("prefixes", "all_positions")


@dataclass
class SASRecConfig:
    """Defaults = RecBole's SASRec with CE loss (its model and training defaults), patience 10, 200 epochs."""

    catalog: Path | None = None
    out: Path | None = None
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    inner: int = 256
    dropout: float = 0.5
    attn_dropout: float = 0.5
    max_len: int = 50
    init_range: float = 0.02
    layer_norm_eps: float = 1e-12
    epochs: int = 200
    patience: int = 10
    batch_size: int = 2048
    eval_batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    train_on: str = "prefixes"
    length_chunks: int = 8
    seed: int = 0
    device: str = "auto"
    threads: int = 0

    def check(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.train_on not in TRAIN_ON:
            raise ValueError(f"train_on must be one of {TRAIN_ON}, got {self.train_on!r}")
        if min(self.epochs, self.batch_size, self.max_len, self.patience, self.length_chunks) < 1:
            raise ValueError("epochs, batch_size, max_len, patience and length_chunks must be >= 1")


HELP = {"init_range": "standard deviation of the normal weight initialization (RecBole: 0.02)",
        "layer_norm_eps": "layer-norm epsilon (RecBole: 1e-12)",
        "catalog": "catalog directory (from idgenrec prepare)", "out": "folder for sasrec.json",
        "hidden": "embedding and hidden size", "layers": "Transformer blocks", "heads": "attention heads",
        "inner": "feed-forward inner size", "dropout": "hidden dropout", "attn_dropout": "attention dropout",
        "max_len": "longest history used (most recent items)", "epochs": "most epochs",
        "patience": "stop after this many epochs without a better validation NDCG@10",
        "train_on": "prefixes (one sample per training position, RecBole) or all_positions (loss at every position "
                    "of each training sequence)",
        "length_chunks": "each batch is computed in this many length-sorted pieces (same gradient, less padding)",
        "device": "auto (a GPU when present), cpu or cuda", "threads": "torch CPU threads (0: torch's default)"}


class Block(nn.Module):
    """One post-norm Transformer block: self-attention, then a GELU feed-forward, each with residual + LayerNorm."""

    def __init__(self, cfg: SASRecConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.attn_out = nn.Linear(cfg.hidden, cfg.hidden)
        self.attn_drop, self.out_drop = nn.Dropout(cfg.attn_dropout), nn.Dropout(cfg.dropout)
        self.norm1 = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.ff = nn.Sequential(nn.Linear(cfg.hidden, cfg.inner), nn.GELU(), nn.Linear(cfg.inner, cfg.hidden),
                                nn.Dropout(cfg.dropout))
        self.norm2 = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, D = h.shape
        q, k, v = self.qkv(h).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(D // self.heads) + mask
        a = self.attn_drop(torch.softmax(scores, dim=-1)) @ v
        h = self.norm1(h + self.out_drop(self.attn_out(a.transpose(1, 2).reshape(B, L, D))))
        return self.norm2(h + self.ff(h))


class SASRec(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig):
        super().__init__()
        self.items = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)  # item row r -> index r + 1; 0 = padding
        self.pos = nn.Embedding(cfg.max_len, cfg.hidden)
        self.norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.apply(lambda m: _init(m, cfg.init_range))

    def hidden_states(self, seq: torch.Tensor) -> torch.Tensor:
        """(batch, length) right-padded item indices -> (batch, length, hidden)."""
        L = seq.shape[1]
        keep = torch.tril(torch.ones(L, L, dtype=torch.bool, device=seq.device))[None, None] & (seq > 0)[:, None, None]
        mask = torch.zeros(keep.shape, device=seq.device).masked_fill(~keep, -10000.0)  # finite: no NaN rows
        h = self.drop(self.norm(self.items(seq) + self.pos(torch.arange(L, device=seq.device))))
        for block in self.blocks:
            h = block(h, mask)
        return h

    def forward(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits over all items (index 0 = padding) after each history's last item: (batch, items + 1)."""
        h = self.hidden_states(seq)
        last = h[torch.arange(seq.shape[0], device=seq.device), lengths - 1]
        return last @ self.items.weight.T


def _init(module: nn.Module, std: float) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.data.normal_(0.0, std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        module.bias.data.zero_()
    if isinstance(module, nn.LayerNorm):
        module.weight.data.fill_(1.0)
        module.bias.data.zero_()


def right_pad(seqs: Sequence[Sequence[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The last ``max_len`` items of each sequence, right-padded with 0, and their lengths."""
    cut = [list(s[-max_len:]) for s in seqs]
    L = max(len(s) for s in cut)
    return (torch.tensor([s + [0] * (L - len(s)) for s in cut], dtype=torch.long),
            torch.tensor([len(s) for s in cut], dtype=torch.long))


def rank(model: SASRec, histories: list[list[int]], k: int, cfg: SASRecConfig, device: torch.device
         ) -> list[list[int]]:
    """Top-``k`` item indices (1-based) per history, over all items."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(histories), cfg.eval_batch_size):
            seq, lengths = right_pad(histories[i:i + cfg.eval_batch_size], cfg.max_len)
            logits = model(seq.to(device), lengths.to(device))
            logits[:, 0] = float("-inf")
            out += logits.topk(k, dim=-1).indices.tolist()
    return out


def training_batches(seqs: list[list[int]], cfg: SASRecConfig, rng: random.Random
                     ) -> Iterator[list[tuple[tuple, object]]]:
    """One epoch of random batches of (input items, target): for ``prefixes`` a history and its next item, for
    ``all_positions`` a user's training sequence without its last item and the same shifted by one."""
    if cfg.train_on == "prefixes":
        pool = [(tuple(s.history), s.target) for s in samples(seqs, "train", cfg.max_len)]
    else:
        pool = [(tuple(t[:-1]), tuple(t[1:])) for t in (s[:-2][-(cfg.max_len + 1):] for s in seqs if len(s) >= 4)]
    rng.shuffle(pool)
    for i in range(0, len(pool), cfg.batch_size):
        yield pool[i:i + cfg.batch_size]


def backward_batch(model: SASRec, batch: list[tuple[tuple, object]], device: torch.device, chunks: int) -> float:
    """Mean cross-entropy of ``batch`` and its gradient, computed in ``chunks`` length-sorted pieces, each padded only
    to its own longest history: the same gradient as the whole batch padded to ``max_len`` (the padding is masked),
    at a fraction of the work, since most histories are far shorter than ``max_len``."""
    order = sorted(range(len(batch)), key=lambda j: len(batch[j][0]))
    per_row = isinstance(batch[0][1], tuple)
    count = sum(len(t) for _, t in batch) if per_row else len(batch)
    size, total = math.ceil(len(batch) / chunks), 0.0
    for start in range(0, len(order), size):
        part = [batch[j] for j in order[start:start + size]]
        seq, lengths = right_pad([x for x, _ in part], len(part[-1][0]))
        seq, lengths = seq.to(device), lengths.to(device)
        if per_row:
            target = right_pad([t for _, t in part], seq.shape[1])[0].to(device)
            logits = model.hidden_states(seq) @ model.items.weight.T
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=0,
                                               reduction="sum")
        else:
            target = torch.tensor([t for _, t in part], device=device)
            loss = nn.functional.cross_entropy(model(seq, lengths), target, reduction="sum")
        (loss / count).backward()
        total += loss.item()
    return total / count


def _split_metrics(model: SASRec, split: list, cfg: SASRecConfig, device: torch.device) -> dict:
    ranked = rank(model, [list(s.history) for s in split], 10, cfg, device)
    return ranking_report(ranked, [s.target for s in split], model.items.num_embeddings - 1)


def train_sasrec(sequences: Sequence[Sequence[str]], item_ids: list[str], cfg: SASRecConfig) -> dict:
    """Train on training positions, keep the epoch with the best validation NDCG@10 (early stopping), and return
    valid and test metrics of that epoch, the best epoch, the epochs run and the seconds taken."""
    cfg.check()
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    index = {i: r + 1 for r, i in enumerate(item_ids)}
    seqs = [[index[i] for i in s] for s in sequences]
    model = SASRec(len(item_ids), cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    valid, test = list(samples(seqs, "valid", cfg.max_len)), list(samples(seqs, "test", cfg.max_len))
    rng = random.Random(cfg.seed)
    best, best_epoch, best_state, history = -1.0, -1, None, []
    bar = progress(range(cfg.epochs), desc="SASRec", unit="epoch")
    for epoch in bar:
        model.train()
        total, n = 0.0, 0
        for batch in training_batches(seqs, cfg, rng):
            opt.zero_grad()
            total, n = total + backward_batch(model, batch, device, cfg.length_chunks), n + 1
            opt.step()
        m = _split_metrics(model, valid, cfg, device)
        history.append({"epoch": epoch, "loss": total / max(n, 1), **m})
        if m["NDCG@10"] > best:
            best, best_epoch = m["NDCG@10"], epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        bar.set_postfix(loss=f"{total / max(n, 1):.3f}", ndcg10=f"{m['NDCG@10']:.4f}", best=best_epoch, refresh=False)
        if epoch - best_epoch >= cfg.patience:
            log.info("SASRec: no better validation NDCG@10 for %d epochs: stopping after epoch %d",
                     cfg.patience, epoch)
            break
    model.load_state_dict(best_state)
    last = history[-1]["epoch"]
    return {"valid": _split_metrics(model, valid, cfg, device), "test": _split_metrics(model, test, cfg, device),
            "best_epoch": best_epoch, "epochs_run": last + 1, "converged": best_epoch < last,
            "seconds": round(time.time() - t0, 1), "device": str(device), "history": history}
