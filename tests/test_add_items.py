"""`idgenrec add-items` on a real tiny generator: old IDs untouched, new ones unique and deterministic (in this process
and on Ray actors), the trie of recommend and eval extended, a rerun a no-op, bad input named."""
import json
import shutil

import pytest
import torch

from catalog.id_table import ITEM_TABLE, item_id_tokens, read_id_table
from catalog.store import read_catalog
from catalog.tokenizer import load_tokenizer
from cluster.add_items import AddItemsConfig, run_add_items
from cluster.cli import main
from cluster.idjob import IDJobConfig, run_ids
from cluster.recommend import RecommendConfig, run_recommend
from eval.evaluate import EvalConfig, evaluate
from infra.errors import DataError
from recommender.trie import Trie
from seq2seq.model import build_model, model_config, save_model
from tests.conftest import write_shared

# Two new items repeat the texts of existing ones (their first candidates are taken: Algorithm 1 must escalate
# against the old table), two are new, one is already in the table (skipped).
NEW = [{"item_id": "n1", "title": "lego star wars ship", "categories": ["Toys"]},
       {"item_id": "n2", "title": "lego star wars ship", "categories": ["Toys"]},
       {"item_id": "n3", "title": "red fire truck with ladder", "categories": ["Toys", "Vehicles"]},
       {"item_id": "i00a", "title": "lego star wars ship", "categories": ["Toys"]},
       {"item_id": "n4", "title": "wooden puzzle farm animals", "categories": ["Toys"]}]


@pytest.fixture(scope="module")
def base(tiny_generator, collide_catalog, tmp_path_factory):
    """An ID job on the colliding catalog, and the new-items file; tests work on copies."""
    d = tmp_path_factory.mktemp("add")
    run_ids(IDJobConfig(catalog=collide_catalog, out=d / "ids", model=tiny_generator, actors=0, shard_size=8,
                        batch_size=8, groups=4))
    write_shared(d / "new", {}, NEW)
    return d


def _copy(base, tmp_path, collide_catalog):
    shutil.copytree(base / "ids", tmp_path / "ids")
    shutil.copytree(collide_catalog, tmp_path / "catalog")
    return tmp_path / "ids", tmp_path / "catalog", base / "new" / "items.jsonl.gz"


def test_new_ids_are_unique_old_ones_untouched_and_a_rerun_changes_nothing(base, collide_catalog, tmp_path):
    ids, cat, items = _copy(base, tmp_path, collide_catalog)
    before = read_id_table(ids / ITEM_TABLE)
    assert main(["add-items", "--ids", str(ids), "--items", str(items), "--catalog", str(cat)]) == 0
    after = read_id_table(ids / ITEM_TABLE)
    n = len(before["id"])
    for col in ("item_id", "id", "token_ids", "attempts", "lambda"):
        assert after[col][:n] == before[col], col  # old rows exactly as they were
    assert after["item_id"][n:] == ["n1", "n2", "n3", "n4"]  # file order; i00a skipped, never duplicated
    assert len(set(after["id"])) == n + 4 and all(after["id"][n:])
    assert max(after["attempts"][n:]) > 1  # the repeated texts had to escalate past the old IDs
    assert read_id_table(ids / "item_ids.v1.parquet") == before  # the previous version is kept
    catalog = read_catalog(cat)
    assert catalog.item_ids[-4:] == ["n1", "n2", "n3", "n4"] and "red fire truck" in catalog.texts[-2]
    assert catalog.sequences == read_catalog(collide_catalog).sequences
    table_bytes, items_bytes = (ids / ITEM_TABLE).read_bytes(), (cat / "items.parquet").read_bytes()
    r = run_add_items(AddItemsConfig(ids=ids, items=items, catalog=cat))
    assert r["added"] == 0 and r["already_present"] == 5 and r["catalog_added"] == 0
    assert (ids / ITEM_TABLE).read_bytes() == table_bytes and (cat / "items.parquet").read_bytes() == items_bytes
    assert not (ids / "item_ids.v2.parquet").exists()
    with pytest.raises(DataError, match=r"items.jsonl.gz: 5 item\(s\) already have an ID"):
        run_add_items(AddItemsConfig(ids=ids, items=items, existing="error"))


@pytest.mark.slow
def test_same_ids_in_this_process_and_on_ray_actors(base, collide_catalog, tmp_path):
    tables = []
    for actors in (0, 2):
        ids, _, items = _copy(base, tmp_path / str(actors), collide_catalog)
        run_add_items(AddItemsConfig(ids=ids, items=items, actors=actors))
        tables.append(read_id_table(ids / ITEM_TABLE))
    assert tables[0] == tables[1]


def test_recommend_and_eval_can_return_the_new_items(base, collide_catalog, sample_tokenizer_dir, tmp_path):
    ids, cat, items = _copy(base, tmp_path, collide_catalog)
    run_add_items(AddItemsConfig(ids=ids, items=items, catalog=cat))
    tok = load_tokenizer(sample_tokenizer_dir)
    catalog = read_catalog(cat)
    _, tokens = item_id_tokens(ids, catalog.item_ids, tok)
    trie = Trie.build(tokens, tok.eos_token_id, len(tok))
    for item in ("n1", "n2", "n3", "n4"):  # each new ID is a path of the trie that ends at its item
        idx, node = catalog.item_ids.index(item), torch.tensor([0])
        for t in tokens[idx] + [tok.eos_token_id]:
            node = trie.advance(node, torch.tensor([t]))
        assert trie.items_at(node).tolist() == [idx]
    save_model(build_model(model_config("tiny"), tok), tok, tmp_path / "rec")
    every = len(catalog.item_ids)  # as many beams as items: nothing is pruned, every decodable ID comes out
    (tmp_path / "h.txt").write_text("u i00a i01b\n")
    out = tmp_path / "r.jsonl"
    run_recommend(RecommendConfig(model=tmp_path / "rec", ids=ids, histories=tmp_path / "h.txt", out=out, k=every,
                                  beams=every, device="cpu"))
    got = json.loads(out.read_text())["items"]
    assert {"n1", "n2", "n3", "n4"} <= set(got) and len(got) == every
    report = evaluate(EvalConfig(model=tmp_path / "rec", catalog=cat, ids=ids, out=tmp_path / "eval", beams=every,
                                 device="cpu"))
    assert report["users"] == 30


def test_bad_input_is_named(base, collide_catalog, tmp_path):
    ids, _, _ = _copy(base, tmp_path, collide_catalog)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"item_id": "z1", "title": "kite"}\n{"title": "no id"}\n{"item_id": "z2", "misc": ""}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: record has no 'item_id'"):
        run_add_items(AddItemsConfig(ids=ids, items=bad))
    assert read_id_table(ids / ITEM_TABLE) == read_id_table(_copy(base, tmp_path / "b", collide_catalog)[0] /
                                                            ITEM_TABLE)  # nothing written
    r = run_add_items(AddItemsConfig(ids=ids, items=bad, skip_bad=True))
    assert r["added"] == 1 and r["skipped"] == {"empty_text": 1, "missing_item_id": 1}
    with pytest.raises(DataError, match="file not found"):
        run_add_items(AddItemsConfig(ids=ids, items=tmp_path / "none.jsonl"))
    with pytest.raises(DataError, match="summary.json: not found"):
        run_add_items(AddItemsConfig(ids=tmp_path, items=bad))


def test_bad_item_lines_are_named(base, collide_catalog, tmp_path):
    ids, _, _ = _copy(base, tmp_path, collide_catalog)
    bad = tmp_path / "bad.jsonl"
    for text, message in [
            ('{"item_id": "z1", "title": "kite"}\n{"item_id": "z2", "title": "unterminated}\n',
             r"bad.jsonl:2: malformed record: not valid JSON: Unterminated string"),
            ('{"item_id": "z1", "title": "kite"}\n{"item_id": "z 2", "title": "kite"}\n',
             r"bad.jsonl:2: item id 'z 2' holds white space"),
            ('{"item_id": 123, "title": "kite"}\n', r"bad.jsonl:1: 'item_id' is 123, not a string"),
            ('{"item_id": "z1", "title": "kite"}\n{"item_id": "z2", "misc": ""}\n',
             r"bad.jsonl:2: item 'z2' has no text")]:
        bad.write_text(text)
        with pytest.raises(DataError, match=message):
            run_add_items(AddItemsConfig(ids=ids, items=bad))
    with pytest.raises(DataError, match="is a directory; expected a file"):
        run_add_items(AddItemsConfig(ids=ids, items=tmp_path))
