import pytest

from catalog.corpus import CorpusConfig, build_corpus
from catalog.heldout import check_heldout
from catalog.store import read_catalog
from tests.conftest import write_shared


def _domain(tmp_path, name, users, items):
    return write_shared(tmp_path / name, {f"u{k}": items[k % len(items):] + items[:k % len(items)][:2]
                                          for k in range(users)},
                        [{"item_id": i, "title": f"{name} thing {i}"} for i in items])


def test_ids_qualified_and_users_capped(tmp_path):
    a = _domain(tmp_path, "Alpha", 10, ["x", "y", "z"])
    b = _domain(tmp_path, "Beta", 4, ["x", "y", "w"])  # raw ids x, y also in Alpha
    cat = build_corpus(CorpusConfig(data=[a, b], out=tmp_path / "corpus", max_users_per_domain=3, seed=1))
    back = read_catalog(tmp_path / "corpus")
    assert back.item_ids == cat.item_ids and len(set(back.item_ids)) == len(back.item_ids)
    assert {i.split(":")[0] for i in back.item_ids} == {"Alpha", "Beta"}
    assert "Alpha:x" in back.item_ids and "Beta:x" in back.item_ids
    assert back.stats["domains"]["Alpha"]["users"] == 3 and back.stats["domains"]["Alpha"]["users_before_cap"] == 10
    assert back.user_domains.count("Beta") == 3
    for user, seq in zip(back.users, back.sequences):
        assert all(i.split(":")[0] == user.split(":")[0] for i in seq) and set(seq) <= set(back.item_ids)
    again = build_corpus(CorpusConfig(data=[a, b], out=tmp_path / "c2", max_users_per_domain=3, seed=1))
    assert again.users == cat.users  # seeded


def test_heldout_overlap_is_an_error(tmp_path):
    a = _domain(tmp_path, "Alpha", 5, ["x", "y", "z"])
    with pytest.raises(ValueError, match="includes held-out dataset Alpha"):
        check_heldout([a], [a])
    with pytest.raises(ValueError, match="includes Office_Industrial, which overlaps held-out dataset Scientific"):
        check_heldout([tmp_path / "Office_Industrial"], [tmp_path / "Scientific"])
    c = _domain(tmp_path, "Gamma", 5, ["z", "q", "r"])  # shares raw item z with Alpha
    with pytest.raises(ValueError, match="shares 1 of its 3 item ids"):
        build_corpus(CorpusConfig(data=[a], heldout=[c], out=tmp_path / "o"))
    ok = build_corpus(CorpusConfig(data=[a], heldout=[c], out=tmp_path / "o", max_shared_item_fraction=0.5))
    assert ok.stats["heldout"] == {"Gamma": {"items_shared_with_pretraining": 1}}


def test_cli(tmp_path, capsys):
    from cluster.cli import main

    a = _domain(tmp_path, "Alpha", 4, ["x", "y", "z"])
    b = _domain(tmp_path, "Beta", 4, ["q", "r", "s"])
    assert main(["corpus", "--data", str(a), "--out", str(tmp_path / "c"), "--heldout", str(b)]) == 0
    assert "corpus: users 4" in capsys.readouterr().out
    assert main(["corpus", "--data", str(a), "--out", str(tmp_path / "c"), "--heldout", str(a)]) == 2
