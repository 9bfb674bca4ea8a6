"""Repeat-aware ranking: history items join the beams at the model's score + a bias, chosen on validation."""
import math

from eval.evaluate import choose_repeat_bias
from recommender.repeats import merge_repeats

BEAMS = [("a", -1.0), ("b", -2.0), ("c", -3.0)]


def test_history_items_join_the_beams_at_score_plus_bias():
    assert merge_repeats(BEAMS, [("h", -2.5)], 0.0) == [("a", -1.0), ("b", -2.0), ("h", -2.5)]
    assert merge_repeats(BEAMS, [("h", -2.5)], 2.0) == [("h", -0.5), ("a", -1.0), ("b", -2.0)]
    assert merge_repeats(BEAMS, [("h", -2.5)], 2.0, k=4)[-1] == ("c", -3.0)
    # an item in both lists appears once, at the higher score
    assert merge_repeats(BEAMS, [("c", -3.5)], 1.0) == [("a", -1.0), ("b", -2.0), ("c", -2.5)]
    assert merge_repeats(BEAMS, [("a", -9.0)], 1.0) == BEAMS
    assert merge_repeats(BEAMS, [("h", 0.0)], -math.inf) == BEAMS  # no bias at all: the beams as they were


def test_the_bias_is_chosen_by_validation_ndcg_and_off_wins_ties():
    beams = [BEAMS] * 4
    history = [[("h", -4.0)], [("h", -4.0)], [("x", -4.0)], [("y", -4.0)]]
    bias, tried = choose_repeat_bias(beams, history, ["h", "h", "a", "a"], [0.0, 2.5, 10.0])
    assert bias == 10.0 and set(tried) == {"off", "0.0", "2.5", "10.0"}
    assert tried["10.0"] > tried["off"]
    bias, tried = choose_repeat_bias(beams, history, ["a", "b", "a", "c"], [0.0, 10.0])  # repeats never pay
    assert bias is None and tried["off"] >= max(tried.values())
