"""SASRec as RecBole builds it: finite and padding-invariant scores (the old nn.TransformerEncoder version returned
NaN in eval mode with 2 heads), chunked gradients equal to whole-batch ones, early stopping, and real learning."""
import random
from collections import Counter

import pytest
import torch

from catalog.sources import read_shared
from eval.baselines import popularity_metrics
from eval.sasrec import SASRec, SASRecConfig, backward_batch, right_pad, train_sasrec, training_batches
from infra.errors import Problems
from tests.conftest import shared_dataset


def _model(**kw) -> SASRec:
    torch.manual_seed(0)
    return SASRec(30, SASRecConfig(**{"max_len": 12, **kw}))


def test_scores_are_finite_and_do_not_depend_on_padding():
    """Two heads, dropout 0.5, eval mode, histories of mixed lengths: the setting where the old model gave NaN.
    A history's scores are the same alone or padded beside a longer one."""
    model = _model(heads=2, dropout=0.5, attn_dropout=0.5).eval()
    histories = [[3], [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [7, 1, 2]]
    with torch.no_grad():
        together = model(*right_pad(histories, 12))
        alone = [model(*right_pad([h], 12))[0] for h in histories]
    assert torch.isfinite(together).all()
    for row, single in zip(together, alone):
        assert torch.allclose(row, single, atol=1e-5)


def test_old_encoder_returned_nan_in_eval_mode():
    """Why the old baseline collapsed: nn.TransformerEncoder with left padding, a causal mask and a key-padding mask
    has fully masked rows, and its eval fast path then turns the whole batch into NaN (2 heads)."""
    layer = torch.nn.TransformerEncoderLayer(16, 2, 32, 0.5, batch_first=True, norm_first=True)
    encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    seq = torch.tensor([[0, 0, 0, 5, 6], [1, 2, 3, 4, 5]])
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)
    with torch.no_grad():
        out = encoder(torch.randn(2, 5, 16), mask=causal, src_key_padding_mask=seq == 0, is_causal=True)
    assert torch.isnan(out).any()


@pytest.mark.parametrize("train_on", ["prefixes", "all_positions"])
def test_chunked_gradient_equals_whole_batch(train_on):
    cfg = SASRecConfig(max_len=12, dropout=0.0, attn_dropout=0.0, batch_size=64, train_on=train_on)
    rng = random.Random(0)
    seqs = [[rng.randrange(1, 31) for _ in range(rng.randrange(3, 16))] for _ in range(40)]
    batch = next(training_batches(seqs, cfg, random.Random(1)))
    grads = []
    for chunks in (1, 5):
        model = _model(dropout=0.0, attn_dropout=0.0)
        loss = backward_batch(model, batch, torch.device("cpu"), chunks)
        grads.append((loss, [p.grad.clone() for p in model.parameters()]))
    assert grads[0][0] == pytest.approx(grads[1][0], rel=1e-5)
    for a, b in zip(grads[0][1], grads[1][1]):
        assert torch.allclose(a, b, atol=1e-6)


def test_early_stopping_after_patience():
    """With lr 0 nothing improves after epoch 0: training stops after `patience` more epochs and says so."""
    seqs = [[f"i{(u * 3 + k) % 20}" for k in range(6)] for u in range(30)]
    items = [f"i{n}" for n in range(20)]
    r = train_sasrec(seqs, items, SASRecConfig(lr=0.0, patience=2, epochs=50, batch_size=16, device="cpu"))
    assert r["best_epoch"] == 0 and r["epochs_run"] == 3 and r["converged"]
    assert set(r["valid"]) >= {"HR@5", "HR@10", "NDCG@5", "NDCG@10"} and r["test"]["users"] == 30


def dense_slice(top_items: int = 1000, min_len: int = 4):
    raw = read_shared(shared_dataset("Beauty"), Problems())
    counts = Counter(i for _, s in raw.sequences for i in s)
    keep = {i for i, _ in counts.most_common(top_items)}
    seqs = [[i for i in s if i in keep] for _, s in raw.sequences]
    seqs = [s for s in seqs if len(s) >= min_len]
    return seqs, sorted(keep)


@pytest.mark.slow
def test_sasrec_beats_popularity_on_validation():
    seqs, items = dense_slice()
    result = train_sasrec(seqs, items, SASRecConfig(epochs=8, batch_size=256, max_len=20, device="cpu"))
    pop = popularity_metrics(seqs, "valid")
    assert result["valid"]["users"] == pop["users"] == len(seqs)
    assert result["valid"]["NDCG@10"] > pop["NDCG@10"] and result["valid"]["HR@10"] > pop["HR@10"]
    assert 0 <= result["best_epoch"] < 8 and result["test"]["users"] == len(seqs)
