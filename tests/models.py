"""Tiny random T5 models for tests."""
from __future__ import annotations

import torch
from transformers import T5Config, T5ForConditionalGeneration


def tiny_t5(vocab: int = 40, seed: int = 0, d_model: int = 16) -> T5ForConditionalGeneration:
    cfg = T5Config(vocab_size=vocab, d_model=d_model, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=2,
                   d_kv=8, dropout_rate=0.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # sharper distributions than the default init, so beams really differ
        model.lm_head.weight.mul_(8.0)
    return model
