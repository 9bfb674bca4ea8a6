"""SASRec learns something on a small, dense slice of real Beauty data: it beats popularity on validation."""
from collections import Counter

from catalog.errors import Problems
from catalog.sources import read_shared
from eval.baselines import popularity_metrics
from eval.sasrec import SASRecConfig, train_sasrec
from tests.conftest import shared_dataset


def dense_slice(top_items: int = 1000, min_len: int = 4):
    raw = read_shared(shared_dataset("Beauty"), Problems())
    counts = Counter(i for _, s in raw.sequences for i in s)
    keep = {i for i, _ in counts.most_common(top_items)}
    seqs = [[i for i in s if i in keep] for _, s in raw.sequences]
    seqs = [s for s in seqs if len(s) >= min_len]
    return seqs, sorted(keep)


def test_sasrec_beats_popularity_on_validation():
    seqs, items = dense_slice()
    result = train_sasrec(seqs, items, SASRecConfig(dim=64, epochs=20, batch_size=256, max_len=20, lr=2e-3))
    pop = popularity_metrics(seqs, "valid")
    assert result["valid"]["users"] == pop["users"] == len(seqs)
    assert result["valid"]["NDCG@10"] > pop["NDCG@10"] and result["valid"]["HR@10"] > pop["HR@10"]
    assert 0 <= result["best_epoch"] < 20 and result["test"]["users"] == len(seqs)
