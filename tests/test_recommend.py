"""`idgenrec recommend` on a tiny model: the evaluation's top-k for the same histories, either input layout, bad input
named by file and line or skipped and counted."""
import io
import json

import pyarrow.parquet as pq
import pytest

from catalog.split import samples
from catalog.store import read_catalog
from catalog.tokenizer import load_tokenizer
from cluster.cli import main
from cluster.recommend import RecommendConfig, run_recommend
from eval.evaluate import EvalConfig, evaluate
from infra.errors import DataError
from seq2seq.model import build_model, model_config, save_model


@pytest.fixture(scope="module")
def served(collide_catalog, sample_tokenizer_dir, word_ids, tmp_path_factory):
    """A tiny recommender, its evaluation on test, and the test histories as a user_sequence.txt file."""
    d = tmp_path_factory.mktemp("serve")
    tok = load_tokenizer(sample_tokenizer_dir)
    save_model(build_model(model_config("tiny"), tok), tok, d / "rec")
    evaluate(EvalConfig(model=d / "rec", catalog=collide_catalog, ids=word_ids, out=d / "eval", device="cpu"))
    cat = read_catalog(collide_catalog)
    todo = list(samples(cat.sequences, "test"))
    (d / "histories.txt").write_text("".join(f"{cat.users[s.user]} {' '.join(s.history)}\n" for s in todo))
    return d, cat, todo, pq.read_table(d / "eval" / "topk_test.parquet").to_pydict()


def test_recommend_gives_the_evaluations_top_k(served, word_ids):
    d, cat, todo, topk = served
    out = d / "recs.jsonl"
    assert main(["recommend", "--model", str(d / "rec"), "--ids", str(word_ids), "--histories",
                 str(d / "histories.txt"), "--out", str(out), "-k", "10", "--batch-size", "7", "--with-ids",
                 "--device", "cpu"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["user"] for r in lines] == topk["user_id"]  # input order
    for r, ranked in zip(lines, topk["topk"]):
        assert r["items"] == ranked[:10] and len(set(r["items"])) == 10  # k distinct items, as eval ranks them
        assert set(r["items"]) <= set(cat.item_ids) and len(r["scores"]) == len(r["ids"]) == 10
        assert all(a >= b for a, b in zip(r["scores"], r["scores"][1:]))


def test_recommend_with_repeat_bias_gives_the_evaluations_top_k(served, word_ids, collide_catalog):
    """Serving and evaluation share repeat-aware ranking: same bias, same lists."""
    d, cat, todo, _ = served
    evaluate(EvalConfig(model=d / "rec", catalog=collide_catalog, ids=word_ids, out=d / "eval_r", device="cpu",
                        repeat_bias=1.5))
    want = pq.read_table(d / "eval_r" / "topk_test.parquet").to_pydict()["topk"]
    stdout = io.StringIO()
    cfg = RecommendConfig(model=d / "rec", ids=word_ids, histories=d / "histories.txt", repeat_bias=1.5,
                          batch_size=5, device="cpu")
    run_recommend(cfg, None, stdout)
    got = [json.loads(line)["items"] for line in stdout.getvalue().splitlines()]
    assert got == [r[:10] for r in want] and any(set(r) & set(s.history) for r, s in zip(got, todo))


def test_recommend_with_a_text_prior_gives_the_evaluations_top_k(served, word_ids, collide_catalog):
    """Serving and evaluation share the text prior: same weight, same lists; the prior brings in items the beams
    had not reached."""
    d, cat, todo, topk = served
    evaluate(EvalConfig(model=d / "rec", catalog=collide_catalog, ids=word_ids, out=d / "eval_t", device="cpu",
                        text_prior=3.0, text_candidates=8))
    want = pq.read_table(d / "eval_t" / "topk_test.parquet").to_pydict()["topk"]
    stdout = io.StringIO()
    cfg = RecommendConfig(model=d / "rec", ids=word_ids, histories=d / "histories.txt", text_prior=3.0,
                          text_candidates=8, catalog=collide_catalog, batch_size=5, device="cpu")
    run_recommend(cfg, None, stdout)
    got = [json.loads(line)["items"] for line in stdout.getvalue().splitlines()]
    assert got == [r[:10] for r in want] and got != [r[:10] for r in topk["topk"]]
    with pytest.raises(ValueError, match="catalog"):
        RecommendConfig(model=d / "rec", ids=word_ids, text_prior=1.0).check()


def test_recommend_with_the_id_prior_gives_the_evaluations_top_k(served, word_ids, collide_catalog):
    """Serving and evaluation share the ID prior correction (with the other levers): same beta, same lists."""
    d, cat, todo, topk = served
    evaluate(EvalConfig(model=d / "rec", catalog=collide_catalog, ids=word_ids, out=d / "eval_p", device="cpu",
                        id_prior=1.0, repeat_bias=0.5, text_prior=3.0, text_candidates=8))
    want = pq.read_table(d / "eval_p" / "topk_test.parquet").to_pydict()["topk"]
    stdout = io.StringIO()
    cfg = RecommendConfig(model=d / "rec", ids=word_ids, histories=d / "histories.txt", id_prior=1.0,
                          repeat_bias=0.5, text_prior=3.0, text_candidates=8, catalog=collide_catalog, batch_size=5,
                          device="cpu")
    run_recommend(cfg, None, stdout)
    got = [json.loads(line)["items"] for line in stdout.getvalue().splitlines()]
    assert got == [r[:10] for r in want] and got != [r[:10] for r in topk["topk"]]


def test_the_new_item_mode_mixes_new_items_in_by_their_measured_worth(served, word_ids, collide_catalog, tmp_path):
    """``--new-items``: each list is the model's (20 beams, each rank at its validation hit rate) merged with the
    new items ranked among themselves by text similarity (each rank at its worth measured on validation with known
    items drawn as new), P(new) = their share of the table: the same lists as composing those pure pieces."""
    from eval.new_item_mode import new_mode_worth, text_among
    from recommender.modes import NEW_MODE_DEPTH, merge_new_item_mode

    d, cat, todo, _ = served
    evaluate(EvalConfig(model=d / "rec", catalog=collide_catalog, ids=word_ids, out=d / "eval_v", split="valid",
                        device="cpu"))
    rates = json.loads((d / "eval_v" / "metrics_valid.json").read_text())["explore_rates"]
    new = [i for i in cat.item_ids if i.endswith("a")]
    (tmp_path / "new.txt").write_text("\n".join(new) + "\n")
    base = dict(model=d / "rec", ids=word_ids, histories=d / "histories.txt", batch_size=5, device="cpu")
    plain = io.StringIO()
    run_recommend(RecommendConfig(**base, k=20), None, plain)
    known = [json.loads(line)["items"] for line in plain.getvalue().splitlines()]
    out = io.StringIO()
    run_recommend(RecommendConfig(**base, new_items=tmp_path / "new.txt", catalog=collide_catalog,
                                  valid_metrics=d / "eval_v" / "metrics_valid.json"), None, out)
    got = [json.loads(line) for line in out.getvalue().splitlines()]
    p_new = len(new) / len(cat.item_ids)
    worth = new_mode_worth(cat, p_new, 0, 20, items=[i for i in cat.item_ids if i not in set(new)])["rates"]
    among = text_among(cat, [s.history[-20:] for s in todo], new, NEW_MODE_DEPTH)
    want = [merge_new_item_mode(k, n, p_new, rates, worth, 10) for k, n in zip(known, among)]
    assert [r["items"] for r in got] == [[i for i, _ in w] for w in want]
    assert any(set(r["items"]) & set(new) for r in got) and [r["items"] for r in got] != [k[:10] for k in known]
    assert all(r["scores"] == pytest.approx([v for _, v in w], abs=1e-6) for r, w in zip(got, want))
    with pytest.raises(DataError, match="no explore_rates"):  # the test split's metrics do not have them
        run_recommend(RecommendConfig(**base, new_items=tmp_path / "new.txt", catalog=collide_catalog,
                                      valid_metrics=d / "eval" / "metrics_test.json"), None, io.StringIO())
    with pytest.raises(ValueError, match="new_items needs --catalog"):
        RecommendConfig(**base, new_items=tmp_path / "new.txt").check()


def test_json_lines_from_standard_input_and_history_rules(served, word_ids):
    d, cat, todo, topk = served
    stdin = io.StringIO("".join(json.dumps({"user": cat.users[s.user], "history": s.history}) + "\n"
                                for s in todo[:5]))
    stdout = io.StringIO()
    cfg = RecommendConfig(model=d / "rec", ids=word_ids, k=5, exclude_history=True, max_history=2, device="cpu")
    assert run_recommend(cfg, stdin, stdout) == {"users": 5, "skipped": {}}
    for line, s in zip(stdout.getvalue().splitlines(), todo[:5]):
        r = json.loads(line)
        assert r["user"] == cat.users[s.user] and not set(r["items"]) & set(s.history[-2:])  # the history kept
        assert len(r["items"]) <= 5


def test_bad_histories_name_the_line_or_are_counted(served, word_ids, tmp_path):
    d, cat, todo, _ = served
    good = f"{cat.users[todo[0].user]} {' '.join(todo[0].history)}"
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{good}\nu2 {todo[0].history[0]} no-such-item\nu3\n{{\"user\": 4}}\n")
    cfg = RecommendConfig(model=d / "rec", ids=word_ids, histories=bad, out=tmp_path / "r.jsonl", device="cpu")
    with pytest.raises(DataError, match=r"bad.txt:2: user u2: unknown item\(s\) \['no-such-item'\]"):
        run_recommend(cfg)
    assert not (tmp_path / "r.jsonl").exists()  # nothing half-written
    bad.write_text(f"{good}\nu2 {todo[0].history[0]} no-such-item\nu3\n")
    r = run_recommend(RecommendConfig(**{**cfg.__dict__, "skip_bad": True}))
    assert r == {"users": 1, "skipped": {"empty_history": 1, "unknown_item": 1}}
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 1
    bad.write_text('{"user": 4}\n')
    with pytest.raises(DataError, match="bad.txt:1: expected"):
        run_recommend(RecommendConfig(**{**cfg.__dict__, "skip_bad": True}))
    with pytest.raises(DataError, match="file not found"):
        run_recommend(RecommendConfig(**{**cfg.__dict__, "histories": tmp_path / "none.txt"}))
    with pytest.raises(ValueError, match="k <= beams"):
        RecommendConfig(k=30, beams=20).check()


@pytest.mark.slow
def test_ray_actors_give_the_same_lines_and_resume(served, word_ids, tmp_path):
    """2 actors in a real local Ray: the same lines in input order as one process; a rerun keeps finished chunks."""
    from cluster.recommend import plan_hash, read_histories
    from infra.errors import Problems

    d, cat, todo, _ = served
    base = dict(model=d / "rec", ids=word_ids, histories=d / "histories.txt", k=10, with_ids=True, chunk=7,
                device="cpu")
    run_recommend(RecommendConfig(**base, out=tmp_path / "local.jsonl"))
    cfg = RecommendConfig(**base, out=tmp_path / "ray.jsonl", actors=2)
    assert run_recommend(cfg)["users"] == len(todo)
    local = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    assert_same(read_lines(tmp_path / "ray.jsonl"), local)
    assert not (tmp_path / "ray.jsonl.parts").exists()
    # an interrupted run left chunk 2 (of 5) behind: the rerun ranks only the others and keeps it as it is
    histories = list(read_histories(open(d / "histories.txt"), "h", set(cat.item_ids), Problems(), 20))
    parts = tmp_path / "ray.jsonl.parts"
    parts.mkdir()
    (parts / "plan.txt").write_text(plan_hash(cfg, histories))
    (parts / "000002.jsonl").write_text("kept\n" * 7)
    run_recommend(cfg)
    lines = (tmp_path / "ray.jsonl").read_text().splitlines()
    assert lines[14:21] == ["kept"] * 7
    assert_same([json.loads(line) for line in lines[:14] + lines[21:]], local[:14] + local[21:])


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_same(lines: list[dict], expected: list[dict]) -> None:
    """The same users, items and IDs in the same order; scores equal but for float rounding (other batches)."""
    assert [(r["user"], r["items"], r["ids"]) for r in lines] == [(r["user"], r["items"], r["ids"]) for r in expected]
    assert all(r["scores"] == pytest.approx(e["scores"], abs=1e-4) for r, e in zip(lines, expected))


def test_candidates_limit_what_is_recommended(served, word_ids, tmp_path):
    d, cat, todo, _ = served
    allowed = cat.item_ids[5:9]
    (tmp_path / "c.txt").write_text("\n".join(allowed) + "\n")
    stdin = io.StringIO(f"{cat.users[todo[0].user]} {' '.join(todo[0].history)}\n")  # history items outside the set
    stdout = io.StringIO()
    cfg = RecommendConfig(model=d / "rec", ids=word_ids, candidates=tmp_path / "c.txt", k=4, beams=4, device="cpu")
    run_recommend(cfg, stdin, stdout)
    assert sorted(json.loads(stdout.getvalue())["items"]) == sorted(allowed)
    (tmp_path / "c.txt").write_text(f"{allowed[0]}\nno-such-item\n")
    with pytest.raises(DataError, match=r"c.txt:2: unknown item 'no-such-item'"):
        run_recommend(cfg, io.StringIO(stdin.getvalue()), io.StringIO())


def test_more_bad_input_is_named_before_any_work(served, word_ids, tmp_path):
    """Bytes that are not UTF-8, a JSON array, directories for input or output: one line naming file and line (or
    the path), before any output is written; a file is checked whole first, so nothing is half-written."""
    d, cat, todo, _ = served
    good = f"{cat.users[todo[0].user]} {' '.join(todo[0].history)}\n".encode()
    bad = tmp_path / "bad.txt"
    bad.write_bytes(good + b"u2 \xff\xfe\n")
    cfg = RecommendConfig(model=d / "rec", ids=word_ids, histories=bad, out=tmp_path / "r.jsonl", device="cpu")
    with pytest.raises(DataError, match=r"bad.txt:2: not UTF-8: byte 0xff at column 4"):
        run_recommend(cfg)
    r = run_recommend(RecommendConfig(**{**cfg.__dict__, "skip_bad": True}))
    assert r == {"users": 1, "skipped": {"non_utf8_line": 1}}
    record = json.loads((tmp_path / "r.jsonl.record.json").read_text())  # what made the file
    assert record["inputs"]["model"]["path"] == str(d / "rec") and record["users"] == 1
    assert len(record["inputs"]["ids"]["fingerprint"]) == 16 and record["config"]["k"] == 10
    bad.write_bytes(good + b'["u2", "a"]\n')
    with pytest.raises(DataError, match=r"bad.txt:2: a JSON array"):
        run_recommend(RecommendConfig(**{**cfg.__dict__, "out": tmp_path / "a.jsonl"}))
    assert not (tmp_path / "a.jsonl").exists()
    with pytest.raises(DataError, match="is a directory; expected a file"):
        run_recommend(RecommendConfig(**{**cfg.__dict__, "histories": tmp_path}))
    bad.write_bytes(good)
    with pytest.raises(DataError, match="is a directory; give a file path"):
        run_recommend(RecommendConfig(**{**cfg.__dict__, "out": tmp_path}))
    streamed = io.StringIO()
    bad.write_bytes(good * 3 + b"u9 no-such-item\n")  # a file given with no --out: nothing streamed before the error
    with pytest.raises(DataError, match="bad.txt:4"):
        run_recommend(RecommendConfig(**{**cfg.__dict__, "out": None}), stdout=streamed)
    assert streamed.getvalue() == ""
