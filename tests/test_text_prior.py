"""The text-similarity prior (recommender.text_prior) and the zero-shot baselines: pure functions on small lists,
the weight chosen on validation only, and the generator's reading length travelling with it to every ID job."""
import json
import math

import pytest

from catalog.similarity import TextSimilarity, text_similarity_ranking
from eval.baselines import random_metrics, text_similarity_metrics, zero_shot_baselines
from eval.evaluate import EvalConfig, choose_by_ndcg
from recommender.text_prior import merge_text_prior, prior_candidates

TEXTS = ["red lego ship", "red lego car", "blue wooden puzzle", "blue wooden train", "green kite"]


def test_candidates_are_the_most_similar_items_not_in_the_history():
    sim = TextSimilarity(TEXTS)
    rows, similarity = prior_candidates(sim, [[0], [2]], beams=[[4, 0], [4]], k=2)
    assert rows[0][0] == 1 and 0 not in rows[0]          # "red lego car" is closest to "red lego ship"
    assert rows[1][0] == 3 and 2 not in rows[1]
    assert set(similarity[0]) == set(rows[0]) | {4, 0}    # the beams' and the history's items get one too
    assert similarity[0][0] == 0.0                        # a history item: not lifted by its likeness to itself
    assert similarity[0][4] == pytest.approx(0.0)         # no shared word
    assert rows == [r[:2] for r in text_similarity_ranking(TEXTS, [[0], [2]], k=2)]


def test_the_prior_lifts_similar_items_and_zero_changes_nothing():
    beams = [("kite", -1.0), ("puzzle", -1.5)]
    candidates = [("car", -2.0), ("puzzle", -3.0)]            # an item in both keeps its higher (beam) score
    similarity = {"kite": 0.0, "puzzle": 0.1, "car": 0.9}
    assert [i for i, _ in merge_text_prior(beams, candidates, similarity, 0.0)] == ["kite", "puzzle"]
    lifted = merge_text_prior(beams, candidates, similarity, 2.0)
    assert [i for i, _ in lifted] == ["car", "kite"]          # -2 + 1.8 > -1 > -1.5 + 0.2; cut to the beams' width
    assert dict(lifted)["car"] == pytest.approx(-0.2)
    assert len(merge_text_prior(beams, candidates, similarity, 2.0, k=3)) == 3


def test_the_weight_is_chosen_by_validation_ndcg_and_off_wins_ties():
    beams = [[("a", -1.0), ("b", -2.0)], [("c", -1.0), ("d", -2.0)]]
    swap = {0.0: beams, 1.0: [[("b", 0.0), ("a", -1.0)], [("d", 0.0), ("c", -1.0)]]}
    best, tried = choose_by_ndcg(beams, ["b", "d"], [0.0, 1.0], lambda w: swap[w])
    assert best == 1.0 and tried["1.0"] == 1.0 and tried["off"] < 1.0
    best, _ = choose_by_ndcg(beams, ["a", "c"], [0.0, 1.0], lambda w: swap[w])
    assert best is None                                       # the prior never pays here: off


def test_the_grid_is_refused_on_test():
    with pytest.raises(ValueError, match="valid split"):
        EvalConfig(split="test", text_prior_grid=[1.0]).check()


def test_random_is_analytic_and_baselines_score_the_same_users():
    r = random_metrics(100, 7)
    assert r["HR@10"] == pytest.approx(0.1) and r["users"] == 7
    assert r["NDCG@5"] == pytest.approx(sum(1 / (100 * math.log2(k + 1)) for k in range(1, 6)))
    ids = ["ship", "car", "puzzle", "train", "kite"]
    seqs = [["ship", "car", "puzzle", "train"], ["puzzle", "train", "ship", "car"], ["kite", "ship", "kite", "car"]]
    out = zero_shot_baselines(ids, TEXTS, seqs, "test", max_users=2)
    assert {m["users"] for m in out.values()} == {2}
    assert out["text_similarity"]["NDCG@5"] == 1.0  # the target shares words with the last items: first
    assert out["recent_then_text"]["NDCG@5"] == pytest.approx(1 / math.log2(5))  # after the 3 history items
    assert [n for n, m in out.items() if m["in_domain"]] == ["popularity", "markov"]
    every = text_similarity_metrics(ids, TEXTS, seqs, "test")  # the in-domain table's row: every test user
    assert every["users"] == 3 and every["NDCG@5"] == pytest.approx(
        zero_shot_baselines(ids, TEXTS, seqs, "test")["text_similarity"]["NDCG@5"])


def test_the_id_job_reads_items_as_the_generator_learned(tiny_generator, tmp_path):
    """The warm start records its source length with the generator; an ID job with max_source_tokens 0 (every job's
    default: the recipe's, zeroshot's, add-items') resolves to it, and a generator without the record to 64."""
    from cluster.idjob import IDJobConfig, with_generator_settings
    from seq2seq.model import model_meta

    assert model_meta(tiny_generator)["max_source_tokens"] == 64
    meta = json.loads((tiny_generator / "idgenrec.json").read_text())
    other = tmp_path / "gen"
    import shutil
    shutil.copytree(tiny_generator, other)
    (other / "idgenrec.json").write_text(json.dumps(meta | {"max_source_tokens": 24}))
    assert with_generator_settings(IDJobConfig(model=other)).max_source_tokens == 24
    assert with_generator_settings(IDJobConfig(model=other, max_source_tokens=40)).max_source_tokens == 40
    (other / "idgenrec.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "max_source_tokens"}))
    assert with_generator_settings(IDJobConfig(model=other)).max_source_tokens == 64
