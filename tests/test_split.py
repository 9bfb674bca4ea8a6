import pytest

from catalog.split import MAX_HISTORY, samples, skipped_users, target_positions


def test_exact_positions():
    seq = list("abcdefg")  # 7 items
    assert list(target_positions(7, "test")) == [6]
    assert list(target_positions(7, "valid")) == [5]
    assert list(target_positions(7, "train")) == [1, 2, 3, 4]
    test = list(samples([seq], "test"))
    assert [(s.history, s.target) for s in test] == [(tuple("abcdef"), "g")]
    valid = list(samples([seq], "valid"))
    assert [(s.history, s.target) for s in valid] == [(tuple("abcde"), "f")]
    train = list(samples([seq], "train"))
    assert [(s.history, s.target, s.position) for s in train] == [
        (("a",), "b", 1), (("a", "b"), "c", 2), (("a", "b", "c"), "d", 3), (("a", "b", "c", "d"), "e", 4)]


def test_history_is_capped_to_the_last_items_before_the_target():
    seq = list(range(30))
    (s,) = samples([seq], "test", max_history=20)
    assert s.history == tuple(range(9, 29)) and s.target == 29
    (s,) = samples([seq], "valid", max_history=3)
    assert s.history == (25, 26, 27) and s.target == 28


def test_short_users_are_skipped_and_counted():
    seqs = [["a", "b"], ["a"], ["a", "b", "c"]]
    assert skipped_users(seqs) == 2
    assert [(s.user, s.target) for s in samples(seqs, "test")] == [(2, "c")]
    assert [(s.user, s.target) for s in samples(seqs, "valid")] == [(2, "b")]
    assert list(samples(seqs, "train")) == []  # 3 items: only valid and test targets


def test_targets_never_in_their_own_history_and_splits_disjoint():
    seq = list(range(12))
    for split in ("train", "valid", "test"):
        for s in samples([seq], split):
            assert s.target not in s.history and s.history == tuple(seq[max(0, s.position - MAX_HISTORY):s.position])
    positions = {split: {s.position for s in samples([seq], split)} for split in ("train", "valid", "test")}
    assert positions["train"].isdisjoint(positions["valid"] | positions["test"])


def test_bad_split_name():
    with pytest.raises(ValueError, match="unknown split"):
        list(samples([[1, 2, 3]], "dev"))
