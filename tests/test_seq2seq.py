"""Our step-by-step T5 decoder (beams share their input's cross-attention) equals the model's own forward."""
import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

import seq2seq.decoder as decoder
from seq2seq.decoder import CachedDecoder

V = 50


def _model(**kw) -> T5ForConditionalGeneration:
    cfg = T5Config(vocab_size=V, d_model=16, d_ff=32, num_layers=2, num_decoder_layers=3, num_heads=2, d_kv=8,
                   dropout_rate=0.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **kw)
    torch.manual_seed(0)
    return T5ForConditionalGeneration(cfg).eval()


@pytest.mark.parametrize("variant", [{}, {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}])
@torch.inference_mode()
def test_steps_with_reordered_beams_equal_full_forward(variant):
    model, E, steps = _model(**variant), 3, 5
    src = torch.tensor([[5, 6, 7, 8, 1], [9, 3, 1, 0, 0]])
    mask = (src != 0).long()
    g = torch.Generator().manual_seed(1)
    dec = CachedDecoder(model, src, mask, expand=E)
    seqs = [[0] for _ in range(src.shape[0] * E)]
    tokens = dec.start()
    for step in range(steps):
        logp = dec.log_probs(dec.step(tokens))
        # reference: the model's forward over each row's whole prefix
        for r, seq in enumerate(seqs):
            ref = model(input_ids=src[r // E: r // E + 1], attention_mask=mask[r // E: r // E + 1],
                        decoder_input_ids=torch.tensor([seq])).logits[0, -1].log_softmax(-1)
            assert torch.allclose(logp[r], ref, atol=1e-5), (step, r)
        # shuffle beams within each input, as beam search does, then extend
        rows = torch.cat([n * E + torch.randint(0, E, (E,), generator=g) for n in range(src.shape[0])])
        dec.reorder(rows)
        tokens = torch.randint(2, V, (rows.shape[0],), generator=g)
        seqs = [seqs[r] + [t] for r, t in zip(rows.tolist(), tokens.tolist())]


@torch.inference_mode()
def test_edge_log_probs_equal_dense_in_any_chunking(monkeypatch):
    model = _model()
    src = torch.tensor([[5, 6, 7, 8, 1], [9, 3, 1, 0, 0], [4, 1, 0, 0, 0]])
    dec = CachedDecoder(model, src, (src != 0).long(), expand=4)
    hidden = dec.step(dec.start())
    dense = dec.log_probs(hidden)
    g = torch.Generator().manual_seed(2)
    rows = torch.randint(0, hidden.shape[0], (40,), generator=g).sort().values  # some rows absent, some repeated
    toks = torch.randint(0, V, (40,), generator=g)
    for chunk_rows in (1, 2, 5, 100):
        monkeypatch.setitem(decoder.LOGIT_CHUNK_ELEMENTS, "cpu", chunk_rows * V)
        got = dec.edge_log_probs(hidden, rows, toks)
        assert torch.allclose(got, dense[rows, toks], atol=1e-5)
    assert dec.edge_log_probs(hidden, rows[:0], toks[:0]).shape == (0,)
