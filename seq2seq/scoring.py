"""Teacher-forced scores of given target sequences: what beam search would score them, without searching.

A target's score is the beam search's own, ``sum log p / (length + 1) ** length_penalty`` over the full vocabulary
(``+1``: the end token), so a scored sequence and a searched one can be ranked together. Each source is encoded once,
however many targets it has.
"""
from __future__ import annotations

from typing import Sequence

import torch


@torch.inference_mode()
def target_scores(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, owners: Sequence[int],
                  targets: Sequence[Sequence[int]], eos_token_id: int, length_penalty: float = 1.0) -> torch.Tensor:
    """Score of each target (content token ids, no end token) given the source row ``owners[i]``."""
    if len(owners) != len(targets):
        raise ValueError(f"{len(owners)} owners for {len(targets)} targets")
    if not targets:
        return torch.zeros(0)
    dev = input_ids.device
    rows = torch.as_tensor(list(owners), dtype=torch.long, device=dev)
    hidden = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    width = max(len(t) for t in targets) + 1
    labels = torch.full((len(targets), width), -100, dtype=torch.long)
    for n, t in enumerate(targets):
        labels[n, : len(t) + 1] = torch.tensor([*t, eos_token_id], dtype=torch.long)
    labels = labels.to(dev)
    logits = model(encoder_outputs=(hidden[rows],), attention_mask=attention_mask[rows], labels=labels).logits
    logp = torch.log_softmax(logits.float(), -1)
    mask = labels != -100
    token = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    return token.sum(1) / mask.sum(1).float() ** length_penalty
