"""Rankings mixed by modes, and the new-item mode: new items mixed in by their share of the catalog and the worth
of each rank, measured on validation with known items treated as new."""
import pytest

from catalog.similarity import text_similarity_ranking
from catalog.store import read_catalog
from eval.new_item_mode import new_mode_worth
from recommender.modes import merge_modes, merge_new_item_mode, new_item_share, pseudo_new_items

KNOWN = ["a", "b", "c", "d", "e"]
KNOWN_RATES = [0.10, 0.05, 0.03, 0.02, 0.01]


def test_a_mode_takes_a_slot_only_where_it_is_worth_more_than_the_rank_it_displaces():
    # P(new) 0.1: the best new item (0.1 x 0.25 = 0.025) stays below c (0.9 x 0.03 = 0.027), passes d (0.018)
    merged = merge_new_item_mode(KNOWN, ["n1", "n2"], 0.1, KNOWN_RATES, [0.25, 0.05], k=5)
    assert [i for i, _ in merged] == ["a", "b", "c", "n1", "d"]
    assert merged[3] == ("n1", pytest.approx(0.1 * 0.25)) and merged[0] == ("a", pytest.approx(0.9 * 0.10))
    assert [i for i, _ in merge_new_item_mode(KNOWN, ["n1"], 0.0, KNOWN_RATES, [0.25], k=3)] == ["a", "b", "c"]
    assert [i for i, _ in merge_new_item_mode(KNOWN, ["n1"], 0.5, KNOWN_RATES, [], k=3)] == ["a", "b", "c"]
    # an item both modes list sums its two shares; a rank past a mode's worths is worth its last one
    both = merge_modes([(0.5, ["x", "y", "z"], [0.2, 0.1]), (0.5, ["z"], [0.3])], 3)
    assert both[0] == ("z", pytest.approx(0.5 * 0.1 + 0.5 * 0.3)) and [i for i, _ in both] == ["z", "x", "y"]


def test_new_item_share_and_the_pseudo_new_draw_are_label_free_and_seeded():
    assert new_item_share(158, 1585) == pytest.approx(0.0997, abs=1e-4) and new_item_share(0, 0) == 0.0
    items = [f"i{n}" for n in range(100)]
    drawn = pseudo_new_items(items, 0.1, seed=3)
    assert len(drawn) == 10 and drawn <= set(items)
    assert drawn == pseudo_new_items(list(reversed(items)), 0.1, seed=3)  # the draw, not the list order
    assert drawn != pseudo_new_items(items, 0.1, seed=4)


def test_text_similarity_among_given_items_ranks_only_those(collide_catalog):
    cat = read_catalog(collide_catalog)
    among = [r for r, i in enumerate(cat.item_ids) if i.endswith("a")]  # one item of each of 12 texts
    history = [cat.item_ids.index("i00b")]  # "lego star wars ship"
    top = text_similarity_ranking(cat.texts, [history], 5, among=among)[0]
    assert set(top) <= set(among) and len(top) == 5
    assert cat.item_ids[top[0]] == "i00a"  # the same text, among the allowed items
    assert text_similarity_ranking(cat.texts, [[among[0]]], 20, among=among)[0][0] != among[0]  # history excluded
    assert len(text_similarity_ranking(cat.texts, [[among[0]]], 20, among=among)[0]) == 11


def test_the_new_item_modes_worth_is_measured_on_validation_targets_treated_as_new(collide_catalog):
    cat = read_catalog(collide_catalog)
    worth = new_mode_worth(cat, 0.25, seed=0, max_history=20)
    pseudo = pseudo_new_items(cat.item_ids, 0.25, 0)
    assert worth["pseudo_new_items"] == len(pseudo) == 12
    assert worth["users"] == sum(seq[-2] in pseudo for seq in cat.sequences if len(seq) >= 3)
    rates = worth["rates"]
    assert len(rates) == 20 and all(a >= b for a, b in zip(rates, rates[1:])) and sum(rates) <= 1.0
