"""Candidates for Algorithm 1 from a T5 ID generator: texts in, ``groups`` decoded ID strings per text out."""
from __future__ import annotations

import torch

from idgen.algorithm1 import Algorithm1Config, State, beam_config
from idgen.tags import generator_input
from seq2seq.beam_search import diverse_beam_search


class Proposer:
    """Proposes candidates for texts that share an Algorithm 1 state, in batches of ``batch_size``.

    Batches are formed from the texts given, in their given order, so results depend only on that list (not on
    which process asks): the basis of the ID job's determinism across actor counts.
    """

    def __init__(self, model, tokenizer, cfg: Algorithm1Config, batch_size: int = 64, max_source_tokens: int = 128,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tok, self.cfg, self.batch_size, self.max_source_tokens = tokenizer, cfg, batch_size, max_source_tokens

    def __call__(self, texts: list[str], state: State) -> list[list[str]]:
        bcfg = beam_config(state, self.cfg)
        out: list[list[str]] = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tok([generator_input(t) for t in texts[start:start + self.batch_size]], truncation=True,
                           max_length=self.max_source_tokens, padding=True, return_tensors="pt")
            res = diverse_beam_search(self.model, enc["input_ids"].to(self.device),
                                      enc["attention_mask"].to(self.device), bcfg, self.tok.eos_token_id,
                                      self.tok.pad_token_id)
            out.extend(self.tok.batch_decode(res.sequences(n), skip_special_tokens=True)
                       for n in range(enc["input_ids"].shape[0]))
        return out

    def propose(self, texts: list[str], states: list[State]) -> list[list[str]]:
        """Texts with their own states: grouped by state (in a fixed order), answers in the input order."""
        by_state: dict[State, list[int]] = {}
        for i, s in enumerate(states):
            by_state.setdefault(State(*s), []).append(i)
        out: list[list[str]] = [[] for _ in texts]
        for state in sorted(by_state):
            idx = by_state[state]
            for i, cands in zip(idx, self([texts[i] for i in idx], state)):
                out[i] = cands
        return out
