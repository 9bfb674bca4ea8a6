"""`idgenrec eval` end to end on a small catalog with a tiny random recommender."""
import json
import shutil

import pyarrow.parquet as pq
import pytest

from catalog.id_table import ITEM_TABLE, item_id_tokens, read_id_table, table_fingerprint, write_id_table
from catalog.split import samples
from catalog.store import read_catalog
from catalog.tokenizer import load_tokenizer, tokenizer_fingerprint
from cluster.cli import main
from seq2seq.model import build_model, load_model_and_tokenizer, model_config, save_model


@pytest.fixture(scope="module")
def setup(collide_catalog, sample_tokenizer_dir, word_ids, tmp_path_factory):
    d = tmp_path_factory.mktemp("eval")
    tok = load_tokenizer(sample_tokenizer_dir)
    save_model(build_model(model_config("tiny"), tok), tok, d / "rec")
    return read_catalog(collide_catalog), d, word_ids


def test_eval_metrics(setup, collide_catalog, tmp_path):
    cat, d, ids = setup
    args = ["eval", "--model", str(d / "rec"), "--catalog", str(collide_catalog), "--ids", str(ids), "--out",
            str(tmp_path), "--batch-size", "7"]
    assert main(args + ["--split", "test"]) == 0
    m = json.loads((tmp_path / "metrics_test.json").read_text())
    eligible = sum(1 for s in cat.sequences if len(s) >= 3)
    assert m["users"] == eligible == 30
    for k in (5, 10):
        assert 0.0 <= m[f"NDCG@{k}"] <= m[f"HR@{k}"] <= 1.0
    assert m["HR@5"] <= m["HR@10"] and "HR@10" in m["popularity"]
    topk = pq.read_table(tmp_path / "topk_test.parquet").to_pydict()
    assert len(topk["user_id"]) == len(set(topk["user_id"])) == 30  # nobody counted twice
    assert topk["target"] == [s.target for s in samples(cat.sequences, "test")]
    assert all(len(r) == 20 and len(set(r)) == 20 for r in topk["topk"])  # 20 distinct items, all real
    assert all(set(r) <= set(cat.item_ids) for r in topk["topk"])
    assert all(a >= b for sc in topk["scores"] for a, b in zip(sc, sc[1:]))  # ranked
    used = {i for r in topk["topk"] for i in r[:10]}
    assert m["coverage@10"] == pytest.approx(len(used) / len(cat.item_ids)) and m["coverage@10"] > 0
    assert main(args + ["--split", "valid", "--exclude-history"]) == 0
    topk = pq.read_table(tmp_path / "topk_valid.parquet").to_pydict()
    for r, sc, s in zip(topk["topk"], topk["scores"], samples(cat.sequences, "valid")):
        assert not set(r) & set(s.history) and len(sc) == len(r)  # scores stay aligned with the kept items


def test_eval_repeat_bias_ranks_history_items_and_is_chosen_on_valid(setup, collide_catalog, tmp_path):
    cat, d, ids = setup
    args = ["eval", "--model", str(d / "rec"), "--catalog", str(collide_catalog), "--ids", str(ids), "--out",
            str(tmp_path), "--batch-size", "7"]
    assert main(args + ["--split", "test", "--repeat-bias", "1000"]) == 0
    topk = pq.read_table(tmp_path / "topk_test.parquet").to_pydict()
    for r, sc, s in zip(topk["topk"], topk["scores"], samples(cat.sequences, "test")):
        hist = set(s.history)
        assert set(r[: len(hist)]) == hist and len(r) == len(set(r)) == 20  # a huge bias: the history first
        assert all(a >= b for a, b in zip(sc, sc[1:]))
    assert main(args + ["--split", "valid", "--repeat-bias-grid", "0", "1000"]) == 0
    m = json.loads((tmp_path / "metrics_valid.json").read_text())
    assert set(m["repeat_bias_ndcg10"]) == {"off", "0.0", "1000.0"}
    chosen = "off" if m["repeat_bias"] is None else str(m["repeat_bias"])
    assert m["NDCG@10"] == pytest.approx(m["repeat_bias_ndcg10"][chosen]) == max(m["repeat_bias_ndcg10"].values())
    assert main(args + ["--split", "test", "--repeat-bias-grid", "0"]) == 2  # chosen on valid, never on test


def test_eval_makes_prompts_as_the_model_was_trained(setup, collide_catalog, sample_tokenizer_dir, tmp_path):
    """The trainer records its shards' max_history in the model's idgenrec.json; eval follows it unless told."""
    cat, d, ids = setup
    tok = load_tokenizer(sample_tokenizer_dir)
    save_model(build_model(model_config("tiny"), tok), tok, tmp_path / "rec", {"max_history": 2})
    args = ["eval", "--catalog", str(collide_catalog), "--ids", str(ids), "--split", "valid", "--beams", "10"]
    runs = ((d / "rec", [], 20), (tmp_path / "rec", [], 2), (tmp_path / "rec", ["--max-history", "3"], 3))
    for model, extra, want in runs:
        out = tmp_path / f"o{want}"
        assert main(args + ["--model", str(model), "--out", str(out), *extra]) == 0
        assert json.loads((out / "metrics_valid.json").read_text())["max_history"] == want


def test_eval_refuses_missing_ids(setup, collide_catalog, tmp_path):
    cat, d, ids = setup
    assert main(["eval", "--model", str(d / "rec"), "--catalog", str(collide_catalog), "--ids", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2


def test_trie_speaks_the_recommenders_tokenizer(setup, collide_catalog, other_tokenizer_dir, tmp_path):
    """An ID table written under tokenizer A, a recommender with tokenizer B of the same size: the trie must be
    built from B's tokens (the old code used the table's A tokens: a silently wrong trie)."""
    cat, _, ids_a = setup
    tok_b = load_tokenizer(other_tokenizer_dir)
    assert tokenizer_fingerprint(tok_b) != table_fingerprint(ids_a / ITEM_TABLE)
    save_model(build_model(model_config("tiny"), tok_b), tok_b, tmp_path / "rec_b")
    texts = read_id_table(ids_a / ITEM_TABLE)["id"]
    write_id_table(tmp_path / "ids_b" / ITEM_TABLE, {"item_id": cat.item_ids}, texts, tok_b)
    assert item_id_tokens(ids_a, cat.item_ids, tok_b)[1] == tok_b(texts, add_special_tokens=False)["input_ids"]
    tops = []
    for ids in (ids_a, tmp_path / "ids_b"):
        assert main(["eval", "--model", str(tmp_path / "rec_b"), "--catalog", str(collide_catalog), "--ids",
                     str(ids), "--out", str(tmp_path / ids.name), "--beams", "10"]) == 0
        tops.append(pq.read_table(tmp_path / ids.name / "topk_test.parquet").to_pydict()["topk"])
    assert tops[0] == tops[1]


def test_a_model_folder_with_a_foreign_tokenizer_is_refused(setup, other_tokenizer_dir, tmp_path):
    _, d, _ = setup
    shutil.copytree(d / "rec", tmp_path / "rec")
    load_tokenizer(other_tokenizer_dir).save_pretrained(str(tmp_path / "rec"))  # same size, other token ids
    with pytest.raises(ValueError, match="the model was saved with tokenizer .* but the tokenizer files there now"):
        load_model_and_tokenizer(tmp_path / "rec")


def test_max_users_scores_popularity_on_the_same_users(setup, collide_catalog, tmp_path):
    cat, d, ids = setup
    assert main(["eval", "--model", str(d / "rec"), "--catalog", str(collide_catalog), "--ids", str(ids), "--out",
                 str(tmp_path), "--max-users", "7"]) == 0
    m = json.loads((tmp_path / "metrics_test.json").read_text())
    assert m["users"] == m["popularity"]["users"] == 7 and m["partial"] is True


def test_an_id_table_with_a_blank_id_is_refused(setup, sample_tokenizer_dir, tmp_path):
    from infra.errors import DataError

    tok = load_tokenizer(sample_tokenizer_dir)
    for blank in ("", "         ", "\u200b \u2581"):
        with pytest.raises(DataError, match=r"1 ID\(s\) are empty or only whitespace, e.g. for \['b'\]"):
            write_id_table(tmp_path / ITEM_TABLE, {"item_id": ["a", "b"]}, ["red car", blank], tok)
    assert not (tmp_path / ITEM_TABLE).exists()
