"""A slow, obviously correct diverse beam search: one item, plain Python lists, the whole decoder re-run each step.

Same rules as seq2seq.beam_search (see its docstring); used only to check the batched version.
"""
from __future__ import annotations

import math

import torch


@torch.inference_mode()
def reference_diverse_beam(model, input_ids: list[int], groups: int, per_group: int, penalty: float,
                           min_new: int, max_new: int, alpha: float, eos: int, pad: int, no_repeat: int = 0):
    """Returns [(normalized score, token list, group)] best first."""
    src = torch.tensor([input_ids])
    enc = model.get_encoder()(input_ids=src, attention_mask=torch.ones_like(src)).last_hidden_state
    start = model.config.decoder_start_token_id
    # each group: list of running beams (score, tokens); finished: list of (norm, tokens)
    running = [[(0.0, [])] + [(-1e9, [])] * (per_group - 1) for _ in range(groups)]
    finished = [[] for _ in range(groups)]
    done = [False] * groups

    def repeats(toks, v):  # would v close an n-gram the beam already holds?
        n = no_repeat
        if not n or len(toks) < n:
            return False
        grams = {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)}
        return tuple(toks[len(toks) - n + 1:] + [v]) in grams

    def next_logp(tokens):
        dec = torch.tensor([[start] + tokens])
        logits = model(encoder_outputs=(enc,), attention_mask=torch.ones_like(src), decoder_input_ids=dec).logits
        logp = torch.log_softmax(logits[0, -1].float(), dim=-1).tolist()
        return logp

    for step in range(max_new + 1):
        chosen_now: dict[int, int] = {}
        for g in range(groups):
            if done[g]:
                continue
            cands = []
            for score, toks in running[g]:
                logp = next_logp(toks)
                for v, lp in enumerate(logp):
                    if v == pad and v != eos:
                        continue
                    if v == eos and step < min_new:
                        continue
                    if v != eos and step >= max_new:
                        continue
                    if v != eos and repeats(toks, v):
                        continue
                    cands.append((score + lp - penalty * chosen_now.get(v, 0), toks, v))
            cands = [c for c in cands if c[0] > -5e8 and not math.isinf(c[0])]
            cands.sort(key=lambda c: -c[0])
            cands = cands[: 2 * per_group]
            new_running = []
            for r, (score, toks, v) in enumerate(cands):
                if v == eos:
                    if r < per_group:
                        finished[g].append((score / (step + 1) ** alpha, toks))
                elif len(new_running) < per_group:
                    new_running.append((score, toks + [v]))
            finished[g] = sorted(finished[g], key=lambda f: -f[0])[:per_group]
            while len(new_running) < per_group:
                new_running.append((-1e9, []))
            running[g] = new_running
            for score, toks in new_running:
                if score > -5e8:
                    chosen_now[toks[-1]] = chosen_now.get(toks[-1], 0) + 1
        for g in range(groups):
            best = max(s for s, _ in running[g])
            if len(finished[g]) == per_group and finished[g][-1][0] >= best / (max_new + 1) ** alpha:
                done[g] = True
        if step >= max_new or all(done):
            break
    out = [(norm, toks, g) for g in range(groups) for norm, toks in finished[g]]
    return sorted(out, key=lambda o: -o[0])
