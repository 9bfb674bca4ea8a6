"""The ID prior correction (recommender.id_prior): scores lowered by each ID's score after an empty history, beta
chosen on validation only, and the evaluation's record of ours with and without it."""
import json

import pytest
import torch

from catalog.id_table import item_id_tokens
from catalog.store import read_catalog
from catalog.tokenizer import load_tokenizer
from cluster.cli import main
from eval.evaluate import EvalConfig
from recommender.id_prior import corrected, corrected_all, null_scores
from recommender.prompts import empty_history_prompt, render_prompt
from seq2seq.model import build_model, model_config, save_model
from seq2seq.scoring import target_scores


def test_the_correction_lowers_each_score_by_beta_times_its_null_score_and_reranks():
    ranked = [("popular", -1.0), ("new", -2.0)]
    null = {"popular": -0.5, "new": -4.0}
    assert corrected(ranked, null, 0.0) == ranked
    assert corrected(ranked, null, 1.0) == [("new", 2.0), ("popular", -0.5)]  # the history raised "new" most
    assert corrected([("unknown", -3.0)], null, 1.0) == [("unknown", -3.0)]
    assert list(corrected_all([ranked], null, None)) == [ranked]


def test_null_scores_are_the_models_scores_after_the_empty_history(sample_tokenizer_dir, collide_catalog, word_ids):
    tok = load_tokenizer(sample_tokenizer_dir)
    torch.manual_seed(0)
    model = build_model(model_config("tiny"), tok).eval()
    cat = read_catalog(collide_catalog)
    _, tokens = item_id_tokens(word_ids, cat.item_ids, tok)
    tokens_of = dict(zip(cat.item_ids, tokens))
    with torch.no_grad():
        null = null_scores(model, tok, cat.item_ids, tokens_of, batch_items=7, max_source_tokens=128)
        enc = tok([empty_history_prompt()], return_tensors="pt")
        one = target_scores(model, enc["input_ids"], enc["attention_mask"], [0] * len(tokens), tokens,
                            tok.eos_token_id)
    assert list(null) == list(cat.item_ids)  # every item, in catalog order, whatever the batch
    assert [null[i] for i in cat.item_ids] == pytest.approx(one.tolist(), abs=1e-5)
    assert "has purchased items" in empty_history_prompt() and empty_history_prompt() != render_prompt(["x"])


def test_beta_is_chosen_on_valid_and_ours_without_it_is_kept(sample_tokenizer_dir, collide_catalog, word_ids,
                                                             tmp_path):
    tok = load_tokenizer(sample_tokenizer_dir)
    torch.manual_seed(0)
    save_model(build_model(model_config("tiny"), tok), tok, tmp_path / "rec")
    args = ["eval", "--model", str(tmp_path / "rec"), "--catalog", str(collide_catalog), "--ids", str(word_ids),
            "--out", str(tmp_path / "e"), "--batch-size", "7"]
    assert main(args + ["--split", "valid", "--id-prior-grid", "0.5", "1", "--text-prior-grid", "1"]) == 0
    m = json.loads((tmp_path / "e" / "metrics_valid.json").read_text())
    assert set(m["id_prior_ndcg10"]) == {"off", "0.5", "1.0"}
    chosen = "off" if m["id_prior"] is None else str(m["id_prior"])
    assert m["NDCG@10"] == pytest.approx(m["id_prior_ndcg10"][chosen]) == max(m["id_prior_ndcg10"].values())
    assert "text_prior" in m  # the text prior chosen again for each beta, the chosen one's record kept
    assert main(args + ["--split", "test", "--id-prior", "1"]) == 0
    t = json.loads((tmp_path / "e" / "metrics_test.json").read_text())
    assert t["id_prior"] == 1.0 and t["without_id_prior"]["users"] == t["users"]
    with pytest.raises(ValueError, match="valid split"):
        EvalConfig(split="test", id_prior_grid=[1.0]).check()
