"""prepare on the shared layout, the raw public formats, every bad-input case, and the real Beauty counts."""
import gzip
import json
from pathlib import Path

import pytest

from catalog.prepare import PrepareConfig, prepare
from catalog.store import read_catalog
from cluster.cli import main
from infra.errors import DataError
from tests.conftest import shared_dataset


def _prepare(data: Path, out: Path, **kw):
    return prepare(PrepareConfig(data=data, out=out, **kw))


def test_shared_layout_round_trip(tiny_dataset, tmp_path):
    cat = _prepare(tiny_dataset, tmp_path / "cat")
    back = read_catalog(tmp_path / "cat")
    assert back.item_ids == list("abcde") and back.users == ["u1", "u2", "u3"]
    assert back.sequences == [list("abcd"), list("bce"), list("ae")]
    assert back.texts[0] == "title: Item A bold; categories: Cat, a"
    s = back.stats
    assert (s["users"], s["items"], s["interactions"]) == (3, 5, 9)
    assert s["density"] == pytest.approx(9 / 15) and s["text_coverage"] == 1.0
    assert s["users_with_fewer_than_3_items"] == 1 and cat.stats == s


def test_text_fields_make_a_thin_text_catalog(tiny_dataset, tmp_path):
    """Only the named fields are rendered and kept (the names-only variant a recipe is checked on: the warm start's
    targets cannot take a category the text does not show); the items stay."""
    from idgen.tags import extract_tags

    prepare(PrepareConfig(data=tiny_dataset, out=tmp_path / "thin", text_fields=["title"]))
    thin = read_catalog(tmp_path / "thin")
    assert thin.item_ids == list("abcde") and thin.texts[0] == "title: Item A bold"
    assert all(set(f) <= {"title"} for f in thin.fields)
    assert all(set(extract_tags(f, t).split()) <= set(t.lower().replace(":", "").split())
               for f, t in zip(thin.fields, thin.texts))


def test_beauty_counts_match_source():
    data = shared_dataset("Beauty")
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        s = _prepare(data, Path(d) / "cat").stats
    assert (s["users"], s["items"], s["interactions"]) == (22_363, 12_101, 198_502)
    assert s["text_coverage"] == 1.0 and s["skipped"] == {}


# ---------- bad input: one clear error naming file and line, or a counted skip ----------

def _bad(tmp_path, seqs_text: str | bytes, items: list[dict] | bytes):
    folder = tmp_path / "bad"
    folder.mkdir(parents=True)
    (folder / "user_sequence.txt").write_bytes(seqs_text if isinstance(seqs_text, bytes) else seqs_text.encode())
    data = items if isinstance(items, bytes) else "".join(json.dumps(i) + "\n" for i in items).encode()
    (folder / "items.jsonl.gz").write_bytes(gzip.compress(data))
    return folder


ITEMS = [{"item_id": x, "title": x} for x in "abc"]


@pytest.mark.parametrize("seqs,items,where,message,kind", [
    ("u1 a b c\nu2 a z c\n", ITEMS, "user_sequence.txt:2", "item 'z' has no metadata", "item_without_metadata"),
    ("u1 a b c\n\nu2 a b\n", ITEMS, "user_sequence.txt:2", "empty line", "empty_line"),
    ("u1 a b c\nu2\n", ITEMS, "user_sequence.txt:2", "has no items", "empty_history"),
    (b"u1 a b c\nu2 a \xff b\n", ITEMS, "user_sequence.txt:2", "not UTF-8: byte 0xff", "non_utf8_line"),
    ("u1 a b c\n", ITEMS + [{"item_id": "b", "title": "again"}], "items.jsonl.gz:4", "duplicate item id 'b'",
     "duplicate_item"),
    ("u1 a b c\n", b'{"item_id": "a"}\n{"item_id": "b", \n{"item_id": "c"}\n', "items.jsonl.gz:2",
     "malformed record", "malformed_line"),
    ("u1 a b c\nu1 a b\n", ITEMS, "user_sequence.txt:2", "duplicate user 'u1'", "duplicate_user"),
])
def test_bad_input_error_names_file_and_line_or_is_counted(tmp_path, seqs, items, where, message, kind):
    folder = _bad(tmp_path, seqs, items)
    with pytest.raises(DataError) as e:
        _prepare(folder, tmp_path / "out")
    assert where in str(e.value) and message in str(e.value)
    assert not (tmp_path / "out").exists()  # nothing half-written
    cat = _prepare(folder, tmp_path / "out", skip_bad=True)
    assert cat.stats["skipped"].get(kind, 0) >= 1


def test_missing_files_are_named(tmp_path):
    with pytest.raises(DataError, match="dataset folder not found"):
        _prepare(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "user_sequence.txt").write_text("u a b c\n")
    with pytest.raises(DataError, match=r"items.jsonl.gz: file not found"):
        _prepare(tmp_path / "half", tmp_path / "out")


def test_empty_dataset_is_an_error(tmp_path):
    """No users (an empty file, or every line skipped) is never a successful prepare."""
    folder = _bad(tmp_path, "", ITEMS)
    with pytest.raises(DataError, match=r"user_sequence.txt: no users with items: the dataset is empty"):
        _prepare(folder, tmp_path / "out")
    folder = _bad(tmp_path / "b", "u1 x y\n", ITEMS)  # the only user's items have no metadata
    with pytest.raises(DataError, match="the dataset is empty after skipping bad input"):
        _prepare(folder, tmp_path / "out", skip_bad=True)
    assert not (tmp_path / "out").exists()


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    folder = _bad(tmp_path, "u1 a b c\n\n", ITEMS)
    assert main(["prepare", "--data", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "user_sequence.txt:2: empty line" in err and "Traceback" not in err
    assert main(["prepare", "--data", str(folder), "--out", str(tmp_path / "o"), "--skip-bad"]) == 0
    assert json.loads((tmp_path / "o" / "stats.json").read_text())["skipped"] == {"empty_line": 1}


def test_interrupted_write_keeps_previous_catalog(tiny_dataset, tmp_path, monkeypatch):
    out = tmp_path / "cat"
    _prepare(tiny_dataset, out)
    import catalog.store as store

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "write_json", boom)
    with pytest.raises(KeyboardInterrupt):
        _prepare(tiny_dataset, out)
    assert read_catalog(out).users == ["u1", "u2", "u3"]
    assert [p.name for p in tmp_path.iterdir()] == ["tiny", "cat"] or sorted(p.name for p in tmp_path.iterdir()) == [
        "cat", "tiny"]


def test_config_yaml_and_flags(tmp_path, tiny_dataset):
    cfg_file = tmp_path / "p.yaml"
    cfg_file.write_text(f"data: {tiny_dataset}\nout: {tmp_path / 'x'}\nmax_text_words: 3\n")
    assert main(["prepare", "--config", str(cfg_file), "--out", str(tmp_path / "y")]) == 0
    assert not (tmp_path / "x").exists()
    assert read_catalog(tmp_path / "y").texts[0] == "title: Item A"
    cfg_file.write_text("nonsense_field: 1\n")
    assert main(["prepare", "--config", str(cfg_file)]) == 2
