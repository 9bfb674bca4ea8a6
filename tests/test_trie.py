import pytest
import torch

from recommender.trie import DEAD, PythonTrie, Trie

EOS, V = 1, 20


def test_shared_prefixes_prefix_ids_and_single_tokens():
    ids = [[5, 6, 7], [5, 6, 8], [5, 6], [9], [10, 5]]
    trie = Trie.build(ids, EOS, V)
    root = torch.tensor([0])
    assert trie.allowed_mask(root)[0].nonzero().flatten().tolist() == [5, 9, 10]
    n5 = trie.advance(root, torch.tensor([5]))
    n56 = trie.advance(n5, torch.tensor([6]))
    assert trie.allowed_mask(n56)[0].nonzero().flatten().tolist() == [EOS, 7, 8]  # [5, 6] is an ID and a prefix
    end = trie.advance(n56, torch.tensor([EOS]))
    assert trie.items_at(end).tolist() == [2]
    assert not trie.allowed_mask(end)[0].any()  # nothing after the end
    n9 = trie.advance(root, torch.tensor([9]))
    assert trie.allowed_mask(n9)[0].nonzero().flatten().tolist() == [EOS]
    assert trie.items_at(trie.advance(n9, torch.tensor([EOS]))).tolist() == [3]
    assert trie.advance(root, torch.tensor([6])).tolist() == [DEAD]
    assert not trie.allowed_mask(torch.tensor([DEAD]))[0].any()


def test_batched_lookup_equals_python_trie():
    g = torch.Generator().manual_seed(0)
    ids = {tuple(torch.randint(2, V, (int(torch.randint(1, 5, (1,), generator=g)),), generator=g).tolist())
           for _ in range(200)}
    ids = [list(i) for i in ids]
    trie, ref = Trie.build(ids, EOS, V), PythonTrie(ids, EOS)
    prefixes = [i[:k] for i in ids for k in range(len(i) + 1)][:300]
    nodes = torch.zeros(len(prefixes), dtype=torch.long)
    for k in range(max(len(p) for p in prefixes)):
        toks = torch.tensor([p[k] if k < len(p) else 0 for p in prefixes])
        moved = trie.advance(nodes, toks)
        nodes = torch.where(torch.tensor([k < len(p) for p in prefixes]), moved, nodes)
    mask = trie.allowed_mask(nodes)
    for r, p in enumerate(prefixes):
        assert sorted(mask[r].nonzero().flatten().tolist()) == sorted(ref.allowed(p))
    for item, i in enumerate(ids):  # every ID reaches its own leaf
        node = torch.tensor([0])
        for t in i + [EOS]:
            node = trie.advance(node, torch.tensor([t]))
        assert trie.items_at(node).tolist() == [item]


def test_duplicate_ids_are_an_error():
    with pytest.raises(ValueError, match="same ID tokens"):
        Trie.build([[3, 4], [5], [3, 4]], EOS, V)
