"""Seq2seq batches for teacher forcing: padded encoder inputs and contiguous labels (pad -> -100)."""
from __future__ import annotations

import torch


def seq2seq_batch(tokenizer, sources: list[str], targets: list[str], max_source_tokens: int,
                  max_target_tokens: int, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Padded encoder inputs and contiguous labels (pad -> -100) for teacher forcing."""
    enc = tokenizer(sources, truncation=True, max_length=max_source_tokens, padding=True, return_tensors="pt")
    labels = tokenizer(targets, truncation=True, max_length=max_target_tokens, padding=True,
                       return_tensors="pt")["input_ids"]
    labels = labels.masked_fill(labels == tokenizer.pad_token_id, -100).contiguous()
    return {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device),
            "labels": labels.to(device)}
