"""A T5 decoder run one token at a time: encoder once, key/value cache reused, beams reorder the cache.

Shared by the diverse beam search (ID generation) and the constrained beam search (recommendation).
"""
from __future__ import annotations

import torch


class CachedDecoder:
    """Holds a batch's encoder output (each input repeated ``expand`` times: one row per beam) and the cache."""

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor, expand: int):
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        self.model, self.expand = model, expand
        encoder_out = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
        self.encoder_hidden = encoder_out.last_hidden_state
        self.attention_mask = attention_mask
        self.cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        self.start_token = model.config.decoder_start_token_id
        self.expanded = False

    @property
    def rows(self) -> int:
        return self.encoder_hidden.shape[0] * (1 if self.expanded else self.expand)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row; return next-token log-probabilities (rows, vocab) in float32.

        The first step feeds the start token, the same for every beam of an input: it runs once per input (which
        also computes the cross-attention keys and values once), then the cache is expanded to one row per beam."""
        first = not self.expanded
        if first:
            tokens = tokens.view(-1, self.expand)[:, 0]
        out = self.model(encoder_outputs=(self.encoder_hidden,), attention_mask=self.attention_mask,
                         decoder_input_ids=tokens.view(-1, 1), cache=self.cache, use_cache=True)
        self.cache = out.past_key_values
        logp = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
        if first:
            self.cache.batch_repeat_interleave(self.expand)
            self.encoder_hidden = self.encoder_hidden.repeat_interleave(self.expand, dim=0)
            self.attention_mask = self.attention_mask.repeat_interleave(self.expand, dim=0)
            self.expanded = True
            logp = logp.repeat_interleave(self.expand, dim=0)
        return logp

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i continues the beam that was in row ``rows[i]``.

        Beams only ever move within their own input's block of rows, whose cross-attention keys and values are
        identical, so only the self-attention cache is reordered (copying the cross-attention cache each step
        cost more than the attention itself)."""
        self.cache.self_attention_cache.reorder_cache(rows)

    def start(self) -> torch.Tensor:
        return torch.full((self.rows,), self.start_token, dtype=torch.long, device=self.encoder_hidden.device)


def seq2seq_batch(tokenizer, sources: list[str], targets: list[str], max_source_tokens: int,
                  max_target_tokens: int, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Padded encoder inputs and contiguous labels (pad -> -100) for teacher forcing."""
    enc = tokenizer(sources, truncation=True, max_length=max_source_tokens, padding=True, return_tensors="pt")
    labels = tokenizer(targets, truncation=True, max_length=max_target_tokens, padding=True,
                       return_tensors="pt")["input_ids"]
    labels = labels.masked_fill(labels == tokenizer.pad_token_id, -100).contiguous()
    return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device),
            "labels": labels.to(device)}
