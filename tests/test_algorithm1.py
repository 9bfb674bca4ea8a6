"""Algorithm 1 as pure functions, and with a real tiny generator on a catalog built to collide."""
import pytest

from catalog.store import read_catalog
from catalog.tokenizer import load_tokenizer
from idgen.algorithm1 import (Algorithm1Config, IDSpaceExhausted, State, claim_round, escalation_fractions, next_state,
                              normalize_id, penalty, run_algorithm1, window)
from idgen.proposer import Proposer
from idgen.userids import user_id_sources
from seq2seq.model import load_model


def test_escalation_order_lambda_then_window():
    cfg = Algorithm1Config()
    s, seen = State(), []
    while s is not None:
        seen.append((penalty(s, cfg), window(s, cfg)))
        s = next_state(s, cfg)
    assert seen[:10] == [(float(lam), (1, 10)) for lam in range(1, 11)]
    assert seen[10:20] == [(float(lam), (10, 20)) for lam in range(1, 11)]
    assert seen[20:] == [(float(lam), (20, 30)) for lam in range(1, 11)]


def test_claims_resolve_in_the_given_order_on_normalized_ids():
    taken = {"red car"}
    claimed, failed = claim_round(taken, [(3, ["Red  Car", "blue car"]), (1, ["blue car", "BLUE car"]),
                                          (2, ["red car"])])
    assert claimed == [(3, "blue car")] and failed == [1, 2]
    assert normalize_id("  Chi  PRO hair ") == "chi pro hair"


def test_run_algorithm1_escalates_until_unique():
    cfg = Algorithm1Config(groups=2, lambda_max=3.0, max_windows=2, on_exhausted="error")
    seen_states = []

    def propose(items, state):  # every item proposes the same two candidates at a given state
        seen_states.append((state, len(items)))
        return [[f"id{state.lam}{state.window}a", f"id{state.lam}{state.window}b"] for _ in items]

    result = run_algorithm1(list(range(12)), propose, cfg)
    ids = [result[i].id for i in range(12)]
    assert len(set(ids)) == 12
    assert result[0].attempts == 1 and result[0].lam == 1.0 and result[0].window == (1, 10)
    assert result[11].attempts == 6 and result[11].window == (10, 20) and result[11].lam == 3.0
    f = escalation_fractions(result.values(), cfg)
    assert f["needed_higher_lambda"] == pytest.approx(10 / 12) and f["needed_longer_window"] == pytest.approx(6 / 12)
    with pytest.raises(IDSpaceExhausted, match="item 'x12'"):
        run_algorithm1(list(range(13)), propose, cfg, names=[f"x{i}" for i in range(13)])


def test_exhausted_items_take_their_best_candidate_with_a_free_tag_of_its_own_letters():
    cfg = Algorithm1Config(groups=2, lambda_max=1.0, max_windows=2)  # two states: [1, 10] then [10, 20]

    def propose(items, state):
        return [["same", "other"] for _ in items]

    result = run_algorithm1(list(range(5)), propose, cfg)
    assert [result[i].id for i in range(5)] == ["same", "other", "same a", "same e", "same m"]  # its own letters
    assert result[2].window == (10, 20) and result[2].attempts == 2
    taken = {"ab", "ab a", "ab b"}
    assert claim_round(taken, [(7, ["AB", "ab"])], last_chance={7}) == ([(7, "ab aa")], [])
    assert claim_round({"a"}, [(7, ["a"])]) == ([], [7])  # not at its last state: retry, no suffix


def test_real_generator_unique_and_deterministic_on_colliding_catalog(tiny_generator, collide_catalog):
    cat = read_catalog(collide_catalog)
    model, tok = load_model(tiny_generator), load_tokenizer(tiny_generator)
    cfg = Algorithm1Config(groups=4)
    runs = []
    for batch in (64, 5):  # batch composition must not change the result
        prop = Proposer(model, tok, cfg, batch_size=batch)
        res = run_algorithm1(list(range(len(cat.texts))),
                             lambda items, state: prop([cat.texts[i] for i in items], state), cfg)
        runs.append([res[i].id for i in range(len(cat.texts))])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == len(cat.texts) == 48 and all(runs[0])
    assert max(res[i].attempts for i in res) > 1  # identical texts forced escalation


def test_user_id_sources_never_see_the_target():
    seqs = [["a", "b", "c", "d"], ["x", "y"]]
    ids = {"a": "id a", "b": "id b", "c": "id c", "d": "id d", "x": "id x", "y": "id y"}
    keys, texts = user_id_sources(seqs, ids, max_history=2)
    assert [(k.user, k.position) for k in keys] == [(0, 1), (0, 2), (0, 3)]  # user 1 is too short
    assert texts == ["id a", "id a ; id b", "id b ; id c"]
    for k, t in zip(keys, texts):
        assert ids[seqs[k.user][k.position]] not in t.split(" ; ")


def test_an_id_table_refuses_ids_that_tokenize_alike(sample_tokenizer_dir, tmp_path):
    from catalog.id_table import write_id_table
    from catalog.tokenizer import load_tokenizer
    from infra.errors import DataError

    tok = load_tokenizer(sample_tokenizer_dir)
    with pytest.raises(DataError, match="'a' and 'b' have IDs 'toy \u4e00' and 'toy \u4e01', which the tokenizer"):
        write_id_table(tmp_path / "t.parquet", {"item_id": ["a", "b"]}, ["toy \u4e00", "toy \u4e01"], tok)
    assert not (tmp_path / "t.parquet").exists()
