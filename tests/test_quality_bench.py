"""bench/quality.py's seeds: one folder and results key per seed, and the table's mean and spread over them."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import quality  # noqa: E402


def _run(hr10: float, sasrec_hr10: float | None) -> dict:
    metrics = lambda v: {"HR@5": v / 2, "HR@10": v, "NDCG@5": v / 4, "NDCG@10": v / 3}  # noqa: E731
    run = {"ours": {"test": metrics(hr10)}, "popularity": {"test": metrics(0.01)}, "users": 10}
    if sasrec_hr10 is not None:
        run["sasrec"] = {"test": metrics(sasrec_hr10)}
    return run


def test_spread_over_seeds_gives_mean_and_sample_sd_of_the_finished_runs():
    assert [quality.seed_name("Beauty", s) for s in (0, 1)] == ["Beauty", "Beauty-seed1"]
    spread = quality.spread([_run(0.10, 0.08), _run(0.12, None), None, _run(0.14, 0.10)])
    assert spread["ours"]["HR@10"] == {"mean": pytest.approx(0.12), "sd": pytest.approx(0.02), "n": 3}
    assert spread["sasrec"]["HR@10"]["n"] == 2 and spread["sasrec"]["HR@10"]["mean"] == pytest.approx(0.09)
    assert spread["popularity"]["NDCG@10"]["sd"] == 0.0
    text = quality.spread_table({"Beauty": spread})
    assert "Beauty" in text and "0.1200 ± 0.0200" in text


def test_the_benchmark_has_no_clock_budget_left():
    cfg = quality.QualityConfig()
    assert not any("budget" in name for name in vars(cfg)) and cfg.seeds == [0] and cfg.epochs == 0
