"""The ID phase: soft embeddings, and gradients that reach the generator and not the frozen recommender."""
import torch

from pretrain.id_phase import IDPhaseSample, id_phase_loss, prompt_pieces, soft_id_embeddings
from recommender.prompts import render_prompt
from tests.models import tiny_t5


def test_one_hot_distribution_gives_the_hard_embeddings():
    emb = torch.randn(50, 8)
    tokens = torch.tensor([[3, 7, 7, 12]])
    logits = torch.nn.functional.one_hot(tokens, 50).float() * 1e4
    assert torch.allclose(soft_id_embeddings(logits, emb), emb[tokens], atol=1e-5)
    # probabilities, not log-probabilities: a uniform distribution gives the mean embedding
    assert torch.allclose(soft_id_embeddings(torch.zeros(1, 1, 50), emb)[0, 0], emb.mean(0), atol=1e-5)


def test_prompt_pieces_put_items_where_render_prompt_does():
    pieces = prompt_pieces(2, "u7", 0)
    assert [p for p in pieces if isinstance(p, int)] == [1, 0]  # the most recent item first
    text = "".join(p if isinstance(p, str) else f"ID{p}" for p in pieces)
    assert text == render_prompt(["ID0", "ID1"], "u7", 0)


class _Tok:
    """A whitespace tokenizer over a tiny vocabulary, enough for the loss function."""
    pad_token_id, eos_token_id = 0, 1

    def __call__(self, texts, add_special_tokens=True, **kw):
        if isinstance(texts, str):
            return {"input_ids": [2 + (hash(w) % 40) for w in texts.split()]}
        ids = [[2 + (hash(w) % 40) for w in t.split()] + [1] for t in texts]
        width = max(map(len, ids))
        return _Enc({"input_ids": torch.tensor([i + [0] * (width - len(i)) for i in ids]),
                     "attention_mask": torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])})


class _Enc(dict):
    def to(self, device):
        return self


def test_gradient_reaches_the_generator_only():
    gen, rec = tiny_t5(vocab=50, seed=1), tiny_t5(vocab=50, seed=2)
    rec.requires_grad_(False)
    gen.train()
    texts = ["red toy car", "blue doll", "green kite", "small ball"]
    tokens = [[5, 6], [7], [8, 9, 10], [11]]
    samples = [IDPhaseSample([0, 1], [8, 9, 10]), IDPhaseSample([2, 1, 0], [11], user_id="u1", template=3)]
    loss = id_phase_loss(gen, rec, _Tok(), samples, texts, tokens)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None for p in rec.parameters())
    grads = [p.grad for p in gen.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0


def test_generator_and_recommender_must_share_a_tokenizer(tiny_generator, collide_catalog, word_ids,
                                                          other_tokenizer_dir, tmp_path):
    """Soft ID embeddings weight the recommender's rows by the generator's token probabilities: two tokenizers of
    the same size (the old check compared sizes only) would silently mix unrelated tokens."""
    import pytest

    from catalog.tokenizer import load_tokenizer
    from pretrain.id_phase import train_generator
    from seq2seq.model import build_model, model_config, save_model

    tok = load_tokenizer(other_tokenizer_dir)
    save_model(build_model(model_config("tiny"), tok), tok, tmp_path / "rec")
    with pytest.raises(ValueError, match="tokenizer mismatch: the generator .* but the recommender"):
        train_generator(tiny_generator, tmp_path / "rec", collide_catalog, word_ids, tmp_path / "gen", steps=1,
                        device="cpu")


def test_prompts_put_the_most_recent_item_first():
    text = render_prompt(["oldest", "middle", "newest"], None, 0)
    assert text.index("newest") < text.index("middle") < text.index("oldest")
    assert "oldest" in text and "newest" in render_prompt(["oldest", "newest"], None, 6).split(";")[0]
