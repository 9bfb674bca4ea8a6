import math

import pytest

from eval.baselines import popularity_metrics, popularity_ranking
from eval.metrics import coverage, leave_one_out_metrics, ndcg, target_rank


def test_hand_computed_examples():
    ranked = [["a", "b", "c", "d", "e", "f"], ["x", "y"], ["q", "r", "s", "t", "u", "v", "w"]]
    targets = ["c", "z", "v"]  # ranks 3, absent, 6
    m = leave_one_out_metrics(ranked, targets, ks=(5, 10))
    assert m["users"] == 3
    assert m["HR@5"] == pytest.approx(1 / 3) and m["HR@10"] == pytest.approx(2 / 3)
    assert m["NDCG@5"] == pytest.approx((1 / math.log2(4)) / 3)
    assert m["NDCG@10"] == pytest.approx((1 / 2 + 1 / math.log2(7)) / 3)
    assert ndcg(1, 5) == 1.0 and target_rank(["a"], "b") is None


def test_each_user_counted_once():
    with pytest.raises(ValueError):
        leave_one_out_metrics([["a"]], ["a", "b"])


def test_popularity_never_sees_the_targets():
    seqs = [["a", "b", "z"], ["a", "c", "z"], ["b", "a", "z"]]  # z is only ever a test target
    assert "z" not in popularity_ranking(seqs, "test", 10)
    assert popularity_ranking(seqs, "test", 2) == ["a", "b"]
    assert popularity_metrics(seqs, "test")["HR@10"] == 0.0
    # valid: counts from the first items only (a, a, b) -> [a, b]; targets b, c, a -> 2 of 3 hit
    assert popularity_metrics(seqs, "valid")["HR@5"] == pytest.approx(2 / 3)


def test_markov_chain_ranks_successors_of_the_last_item_then_popular_ones():
    from eval.baselines import markov_metrics, markov_rankings

    seqs = [["a", "b", "c", "x"], ["a", "b", "d", "b"], ["c", "a", "y", "a"], ["q", "a", "b"]]
    # test: transitions in everything but the last items: a->b twice, a->y, b->c, b->d, c->a, q->a;
    # popularity there: a 4, b 2, c 2, then d, q, y
    ranked = markov_rankings(seqs, "test", 3)
    assert ranked[0] == ["a", "b", "c"]  # c -> a, then the most popular items not listed yet
    assert ranked[1] == ["a", "b", "c"]  # d has no successor seen: popularity alone
    assert ranked[3] == ["b", "y", "a"]  # a -> b (twice) before a -> y (once), then popular
    assert "x" not in sum(ranked, []) and markov_metrics(seqs, "test")["HR@5"] == pytest.approx(3 / 4)
    # valid: the last two items of each user are hidden: only a->b (twice) and c->a are seen
    assert markov_rankings(seqs, "valid", 1) == [["a"], ["a"], ["b"], ["a"]]


def test_the_same_data_markov_chain_leaves_out_the_moves_into_validation_items_on_test():
    """The trained models never learn from a user's move into its validation item; the same-data row counts only
    the transitions into training targets, on test as on valid."""
    from eval.baselines import markov_metrics, markov_rankings, markov_training_metrics

    seqs = [["a", "b", "k", "l"], ["a", "c", "e"], ["m", "a", "c", "n"], ["x", "a", "z"]]
    # visible on test: a->b (a training move), a->c twice (users 2 and 3 moving into their validation items)
    assert markov_rankings(seqs, "test", 1)[3] == ["c"]
    assert markov_rankings(seqs, "test", 1, training_only=True)[3] == ["b"]  # a->b alone is training data
    assert markov_training_metrics(seqs, "valid") == markov_metrics(seqs, "valid")  # valid sees the same either way


def test_recent_items_are_the_history_most_recent_first_each_once_then_popular_ones():
    from eval.baselines import recent_metrics, recent_rankings

    seqs = [["a", "b", "a", "c", "a"], ["d", "b", "e"], ["c", "b", "b", "x"]]
    # test: histories a b a c / d b / c b b; popularity there: b 4, a 2, c 2, then d
    assert recent_rankings(seqs, "test", 3) == [["c", "a", "b"], ["b", "d", "a"], ["b", "c", "a"]]
    assert recent_metrics(seqs, "test")["HR@5"] == pytest.approx(1 / 3)  # only the repeat (a) is found...
    assert recent_metrics(seqs, "test")["NDCG@5"] == pytest.approx(1 / 3 / math.log2(3))  # ...at rank 2
    # valid: histories a b a / d / c b; the targets c, b, b: the last one is a repeat at rank 1
    assert recent_rankings(seqs, "valid", 2)[2] == ["b", "c"]


def test_text_similarity_ranks_by_shared_rare_words_and_skips_the_history():
    from catalog.similarity import text_similarity_ranking

    texts = ["red fire truck", "blue fire truck", "green apple", "red apple pie", "lego ship", "fire truck ladder"]
    top = text_similarity_ranking(texts, [[0], [2, 3], [4]], k=2, batch=2)
    assert top[0] == [1, 5] or top[0] == [5, 1]  # the other fire trucks, never item 0 itself
    assert 0 not in top[0] and 2 not in top[1] and 3 not in top[1]
    assert top[1][0] == 0  # 'red' (from 'red apple pie', the last item) is shared only with item 0
    assert len(top[2]) == 2 and 4 not in top[2]


def test_coverage_counts_the_items_the_top_k_lists_use():
    ranked = [["a", "b", "c"], ["a", "b", "d"], ["a", "b", "c"]]
    assert coverage(ranked, 10, k=2) == pytest.approx(0.2)  # everybody gets a, b: a collapse
    assert coverage(ranked, 10, k=3) == pytest.approx(0.4)
    assert coverage([], 10) == 0.0


def test_hybrid_weight_zero_is_ours_and_the_weight_is_chosen_on_validation():
    from eval.hybrid import choose_weight, merged_rankings

    ours = [[f"o{u}{r}" for r in range(20)] for u in range(40)]
    other = [[f"m{u}{r}" for r in range(20)] for u in range(40)]
    targets = [f"m{u}0" if u % 2 else f"o{u}3" for u in range(40)]  # the other's first item is right for half
    chosen = choose_weight(ours, other, targets, grid=[0.0, 0.5, 0.9])
    assert chosen["weight"] > 0 and chosen["other_worth"][0] == 0.5
    assert chosen["ours_worth"][:4] == [0.125] * 4  # hits at rank 4 only: pooled over ranks 1-4, never rising
    assert chosen["valid_ndcg10"][str(chosen["weight"])] > chosen["valid_ndcg10"]["0.0"]
    assert merged_rankings(ours, other, 0.0, chosen["ours_worth"], chosen["other_worth"]) == [o[:10] for o in ours]
    merged = merged_rankings(ours, other, chosen["weight"], chosen["ours_worth"], chosen["other_worth"])
    assert all(m[0] == f"m{u}0" for u, m in enumerate(merged))  # the other's rank 1 is worth the most
    with pytest.raises(ValueError, match="same users"):
        choose_weight(ours, other[:-1], targets)
