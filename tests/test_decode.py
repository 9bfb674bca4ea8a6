"""Trie-constrained beam search equals transformers' generate with a Python trie callback."""
import pytest
import torch

from recommender.decode import recommend
from recommender.trie import PythonTrie, Trie
from tests.models import tiny_t5

EOS, PAD, V = 1, 0, 60


def _ids(n, seed):
    g = torch.Generator().manual_seed(seed)
    out = set()
    while len(out) < n:
        out.add(tuple(torch.randint(2, V, (int(torch.randint(1, 5, (1,), generator=g)),), generator=g).tolist()))
    return [list(i) for i in sorted(out)]


@pytest.mark.parametrize("beams,k,seed", [(8, 5, 0), (20, 10, 1), (4, 4, 2)])
def test_equals_transformers_generate_with_python_trie(beams, k, seed):
    model = tiny_t5(vocab=V, seed=seed)
    ids = _ids(300, seed)
    trie, ref = Trie.build(ids, EOS, V), PythonTrie(ids, EOS)
    g = torch.Generator().manual_seed(seed + 10)
    src = torch.randint(2, V, (6, 9), generator=g)
    src[:, -1] = EOS
    mask = torch.ones_like(src)
    src[0, 5:], mask[0, 5:] = PAD, 0  # one shorter (padded) input
    ours = recommend(model, src, mask, trie, beams=beams, k=k, eos_token_id=EOS, pad_token_id=PAD)
    hf = model.generate(input_ids=src, attention_mask=mask, num_beams=beams, num_return_sequences=k,
                        max_new_tokens=trie.max_depth, early_stopping=True, do_sample=False,
                        prefix_allowed_tokens_fn=ref.prefix_allowed_tokens_fn(PAD),
                        output_scores=True, return_dict_in_generate=True, length_penalty=1.0)
    seqs = hf.sequences.view(src.shape[0], k, -1)
    hf_scores = hf.sequences_scores.view(src.shape[0], k)
    lookup = {tuple(i): n for n, i in enumerate(ids)}
    for u in range(src.shape[0]):
        hf_items = []
        for s in seqs[u].tolist():
            toks = s[1:]
            toks = toks[: toks.index(EOS)] if EOS in toks else toks
            hf_items.append(lookup[tuple(toks)])
        assert ours.items[u].tolist() == hf_items
        assert torch.allclose(ours.scores[u], hf_scores[u], atol=1e-4)


def test_k_needs_enough_beams():
    model = tiny_t5(vocab=V)
    with pytest.raises(ValueError, match="beams"):
        recommend(model, torch.tensor([[3, 1]]), torch.tensor([[1, 1]]), Trie.build([[3]], EOS, V), 2, 5, EOS, PAD)


def test_no_repeat_ngram_also_holds_under_a_trie():
    from recommender.decode import TrieConstraint
    from seq2seq.beam_search import DiverseBeamConfig, diverse_beam_search

    model = tiny_t5(vocab=V, seed=3)
    ids = [[5, 5, 6], [5, 6, 7], [7, 7], [8, 9, 8], [9]]  # three repeat a token
    trie = Trie.build(ids, EOS, V)
    src, mask = torch.tensor([[3, 4, 1], [12, 13, 1]]), torch.ones(2, 3, dtype=torch.long)
    cfg = DiverseBeamConfig(groups=1, beams_per_group=8, diversity_penalty=0.0, min_new_tokens=0,
                            max_new_tokens=trie.max_depth - 1, early_stopping=True, no_repeat_ngram_size=1)
    res = diverse_beam_search(model, src, mask, cfg, EOS, PAD, banned_token_ids=[],
                              constraint=TrieConstraint(trie, 2 * 8, src.device))
    for u in range(2):
        assert sorted(res.sequences(u)) == [[5, 6, 7], [9]]  # every ID without a repeat, and only those


@pytest.mark.parametrize("length_penalty", [1.0, 0.5])
def test_teacher_forced_scores_equal_the_beam_scores(length_penalty):
    """Repeat-aware ranking scores history items without searching: the score must be the beam search's own."""
    from seq2seq.scoring import target_scores

    model, ids = tiny_t5(vocab=V, seed=4), _ids(200, 4)
    trie = Trie.build(ids, EOS, V)
    src = torch.randint(2, V, (3, 7), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(src)
    mask[1, 4:] = 0
    top = recommend(model, src, mask, trie, beams=6, k=6, eos_token_id=EOS, pad_token_id=PAD,
                    length_penalty=length_penalty)
    owners = [u for u in range(3) for _ in range(6)]
    targets = [ids[i] for i in top.items.view(-1).tolist()]
    scores = target_scores(model, src, mask, owners, targets, EOS, length_penalty)
    assert torch.allclose(scores, top.scores.view(-1), atol=1e-4)
