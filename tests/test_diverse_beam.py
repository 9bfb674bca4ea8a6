"""Our batched diverse beam search against the slow per-item reference on tiny random models."""
import pytest
import torch

from seq2seq.beam_search import DiverseBeamConfig, diverse_beam_search
from tests.models import tiny_t5
from tests.reference_beam import reference_diverse_beam


def _batch(seqs, pad=0):
    L = max(len(s) for s in seqs)
    ids = torch.tensor([s + [pad] * (L - len(s)) for s in seqs])
    return ids, (ids != pad).long()


SOURCES = [[5, 6, 7, 8, 1], [9, 3, 1], [12, 13, 14, 15, 16, 17, 1], [20, 1], [5, 6, 7, 9, 1], [33, 34, 35, 1]]


@pytest.mark.parametrize("groups,per_group,penalty,window,alpha,seed", [
    (4, 1, 1.0, (1, 5), 1.0, 0),
    (3, 2, 0.7, (2, 6), 1.0, 1),
    (5, 1, 3.0, (1, 4), 0.0, 2),
    (2, 3, 0.0, (1, 5), 1.0, 3),
    (10, 1, 2.0, (3, 8), 1.0, 4),
])
def test_batched_equals_reference(groups, per_group, penalty, window, alpha, seed):
    model = tiny_t5(seed=seed)
    cfg = DiverseBeamConfig(groups=groups, beams_per_group=per_group, diversity_penalty=penalty,
                            min_new_tokens=window[0], max_new_tokens=window[1], length_penalty=alpha)
    ids, mask = _batch(SOURCES)
    out = diverse_beam_search(model, ids, mask, cfg, eos_token_id=1, pad_token_id=0)
    for n, src in enumerate(SOURCES):
        ref = reference_diverse_beam(model, src, groups, per_group, penalty, window[0], window[1], alpha, 1, 0)
        got = out.sequences(n)
        assert [r[1] for r in ref] == got
        assert torch.allclose(out.scores[n, : len(ref)], torch.tensor([r[0] for r in ref]), atol=1e-4)
        for toks in got:
            assert window[0] <= len(toks) <= window[1] and 0 not in toks and 1 not in toks


@pytest.mark.parametrize("no_repeat,seed", [(1, 7), (2, 8)])
def test_no_repeat_ngram_equals_reference_and_never_repeats(no_repeat, seed):
    model = tiny_t5(seed=seed)
    cfg = DiverseBeamConfig(groups=3, beams_per_group=2, diversity_penalty=1.0, min_new_tokens=6, max_new_tokens=9,
                            no_repeat_ngram_size=no_repeat)
    ids, mask = _batch(SOURCES)
    out = diverse_beam_search(model, ids, mask, cfg, eos_token_id=1, pad_token_id=0)
    for n, src in enumerate(SOURCES):
        ref = reference_diverse_beam(model, src, 3, 2, 1.0, 6, 9, 1.0, 1, 0, no_repeat=no_repeat)
        got = out.sequences(n)
        assert [r[1] for r in ref] == got and got
        for toks in got:
            grams = [tuple(toks[i:i + no_repeat]) for i in range(len(toks) - no_repeat + 1)]
            assert len(grams) == len(set(grams))


def test_zero_penalty_groups_each_equal_plain_beam_search():
    model = tiny_t5(seed=5)
    ids, mask = _batch(SOURCES)
    plain = diverse_beam_search(model, ids, mask, DiverseBeamConfig(groups=1, beams_per_group=2,
                                diversity_penalty=0.0, max_new_tokens=6), 1, 0)
    grouped = diverse_beam_search(model, ids, mask, DiverseBeamConfig(groups=3, beams_per_group=2,
                                  diversity_penalty=0.0, max_new_tokens=6), 1, 0)
    for n in range(len(SOURCES)):
        assert grouped.sequences(n) == [s for s in plain.sequences(n) for _ in range(3)]


def test_penalty_makes_groups_differ_and_is_independent_of_batch():
    model = tiny_t5(seed=6)
    ids, mask = _batch(SOURCES)
    cfg = DiverseBeamConfig(groups=6, diversity_penalty=1000.0, max_new_tokens=5)
    out = diverse_beam_search(model, ids, mask, cfg, 1, 0)
    for n in range(len(SOURCES)):
        firsts = [s[0] for s in out.sequences(n)]
        assert len(set(firsts)) == 6  # a huge penalty: each group starts with another token
        alone = diverse_beam_search(model, *_batch([SOURCES[n]]), cfg, 1, 0)
        assert alone.sequences(0) == out.sequences(n)


def test_copy_source_writes_only_tokens_of_the_items_own_input():
    model = tiny_t5(seed=9)
    ids, mask = _batch(SOURCES)
    free = diverse_beam_search(model, ids, mask, DiverseBeamConfig(groups=4, max_new_tokens=4), eos_token_id=1,
                               pad_token_id=0)
    assert any(t not in src for n, src in enumerate(SOURCES) for c in free.sequences(n) for t in c)  # not vacuous
    cfg = DiverseBeamConfig(groups=4, max_new_tokens=4, copy_source=True, no_repeat_ngram_size=1)
    out = diverse_beam_search(model, ids, mask, cfg, eos_token_id=1, pad_token_id=0)
    for n, src in enumerate(SOURCES):
        got = out.sequences(n)
        assert got and all(t in src and t != 1 for c in got for t in c)
    assert {tuple(c) for c in out.sequences(3)} == {(20,)}  # one source word: the only ID it can write
