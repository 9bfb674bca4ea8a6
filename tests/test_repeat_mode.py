"""The repeat mode: history items mixed into the ranking by probabilities read without labels."""
import json
import math

import pyarrow.parquet as pq
import pytest

from catalog.split import samples
from catalog.store import read_catalog
from cluster.cli import main
from eval.metrics import hit_rates_by_rank, leave_one_out_metrics
from recommender.repeat_mode import (beta_prior_weight, merge_repeat_mode, repeat_probability, repeat_profile,
                                     repeats_in)
from tests.conftest import write_shared

EXPLORE = [("x", 9.0), ("y", 8.0), ("z", 7.0), ("w", 6.0)]
RATES = [0.12, 0.05, 0.02, 0.01]


def test_repeats_are_counted_with_their_recency():
    assert repeats_in(["a", "b", "c"]) == (2, 0, [])
    # a: b came since (rank 1); b: then c and a came since (rank 2 among the distinct items, most recent first)
    assert repeats_in(["a", "b", "a", "c", "b"]) == (4, 2, [1, 2])
    assert repeats_in(["a"]) == (0, 0, []) and repeats_in([]) == (0, 0, [])


def test_histories_that_never_repeat_leave_the_ranking_exactly_as_it_was():
    profile = repeat_profile([["a", "b", "c"], ["d", "e"]])
    assert profile.rate == 0.0 and math.isinf(profile.prior)
    assert repeat_probability(profile, ["a", "b"]) == 0.0
    assert merge_repeat_mode(EXPLORE, ["a", "b"], 0.0, profile.lags, RATES) == EXPLORE
    assert merge_repeat_mode(EXPLORE, ["a"], 0.5, profile.lags, []) == EXPLORE  # no rates: no mode


def test_history_items_enter_by_probability_most_recent_first():
    lags = [0.6, 0.3, 0.1]
    # p = 0.5: the last item 0.5 x 0.6 = 0.30 beats x (0.5 x 0.12); the one before 0.15 too, the oldest 0.05 not
    merged = merge_repeat_mode(EXPLORE, ["old", "mid", "last"], 0.5, lags, RATES)
    assert [i for i, _ in merged] == ["last", "mid", "x", "old"]
    assert merged[0][1] == pytest.approx(0.30) and merged[2][1] == pytest.approx(0.06)
    merged = merge_repeat_mode(EXPLORE, ["old", "mid", "last"], 0.01, lags, RATES, k=6)  # rare repeats: below x
    assert [i for i, _ in merged] == ["x", "y", "z", "w", "last", "mid"]
    # an item in both lists sums its two probabilities; a user with one item gets the whole repeat share
    merged = merge_repeat_mode(EXPLORE, ["y"], 0.1, lags, RATES)
    assert merged[0] == ("y", pytest.approx(0.9 * 0.05 + 0.1))


def test_users_who_repeat_more_get_a_higher_repeat_probability_when_users_differ():
    histories = [["a", "a", "a", "a", "a"]] * 10 + [["a", "b", "c", "d", "e"]] * 10
    profile = repeat_profile(histories)
    assert profile.rate == pytest.approx(0.5) and profile.prior < 1.0  # users differ far beyond binomial noise
    assert repeat_probability(profile, ["a", "a", "a"]) > 0.9 and repeat_probability(profile, ["a", "b", "c"]) < 0.1
    assert profile.lags[0] == pytest.approx(1.0)
    # the same rate spread as binomial noise: no prior of users' own rates, everyone gets the dataset's
    assert math.isinf(beta_prior_weight([4] * 50, [2] * 50))
    assert repeat_probability(repeat_profile([["a", "b", "a"], ["c", "d", "d"]]), ["e", "f"]) > 0.0


def test_hit_rates_by_rank_never_rise_and_keep_the_hits():
    ranked = [["t", "x"], ["x", "t"], ["x", "t"], ["x", "y"]]
    rates = hit_rates_by_rank(ranked, ["t"] * 4, 3)
    assert rates == [pytest.approx(0.375), pytest.approx(0.375), 0.0]  # 1 then 2 hits pooled: never rising
    assert sum(rates) == pytest.approx(leave_one_out_metrics(ranked, ["t"] * 4)["HR@5"])


@pytest.fixture(scope="module")
def repeat_catalog(collide_catalog, tmp_path_factory):
    """The colliding catalog's items, with users who come back to their items."""
    from catalog.prepare import PrepareConfig, prepare

    items = read_catalog(collide_catalog).item_ids
    seqs = {f"u{n}": [items[(n * 3 + k) % 48] for k in (0, 1, 0, 2, 1, 0)] for n in range(20)}
    d = tmp_path_factory.mktemp("repeats")
    write_shared(d / "data", seqs, [{"item_id": i, "title": f"item {i}", "categories": ["Toys"]} for i in items])
    prepare(PrepareConfig(data=d / "data", out=d / "catalog"))
    return d / "catalog"


def test_eval_records_explore_rates_on_valid_and_the_repeat_mode_uses_them(
        collide_catalog, repeat_catalog, sample_tokenizer_dir, word_ids, tmp_path):
    from catalog.tokenizer import load_tokenizer
    from seq2seq.model import build_model, model_config, save_model

    tok = load_tokenizer(sample_tokenizer_dir)
    save_model(build_model(model_config("tiny"), tok), tok, tmp_path / "rec")
    base = ["eval", "--model", str(tmp_path / "rec"), "--ids", str(word_ids), "--batch-size", "8"]
    assert main(base + ["--catalog", str(collide_catalog), "--out", str(tmp_path / "v"), "--split", "valid"]) == 0
    rates = json.loads((tmp_path / "v" / "metrics_valid.json").read_text())["explore_rates"]
    assert len(rates) == 20 and all(a >= b for a, b in zip(rates, rates[1:]))
    flags = ["--explore-rates", "0.02", "0.01", "--split", "test"]
    # no repeats in these histories: the same ranking as without the mode
    assert main(base + ["--catalog", str(collide_catalog), "--out", str(tmp_path / "t0"), "--split", "test"]) == 0
    assert main(base + ["--catalog", str(collide_catalog), "--out", str(tmp_path / "t1"), *flags]) == 0
    plain, mode = (pq.read_table(tmp_path / f / "topk_test.parquet").to_pydict()["topk"] for f in ("t0", "t1"))
    assert plain == mode
    assert json.loads((tmp_path / "t1" / "metrics_test.json").read_text())["repeat_mode"]["rate"] == 0.0
    # users who come back to their items (A B A C B -> A): items repeated 1 or 2 distinct items back take the top
    assert main(base + ["--catalog", str(repeat_catalog), "--out", str(tmp_path / "r"), *flags]) == 0
    m = json.loads((tmp_path / "r" / "metrics_test.json").read_text())
    assert m["repeat_mode"]["rate"] > 0.3 and m["HR@5"] == 1.0 and "without_repeat_mode" in m
    topk = pq.read_table(tmp_path / "r" / "topk_test.parquet").to_pydict()["topk"]
    for ranked, s in zip(topk, samples(read_catalog(repeat_catalog).sequences, "test")):
        assert set(ranked[:2]) == set(s.history) - {s.history[-1]} and len(ranked) == len(set(ranked)) == 20
    assert main(base + ["--catalog", str(repeat_catalog), "--out", str(tmp_path / "x"), *flags,
                        "--repeat-bias", "0"]) == 2  # one way of ranking repeats at a time
