"""Diverse (group) beam search with a Hamming diversity penalty (Vijayakumar et al., 2016), batched over items.

transformers 5 dropped group beam search from its core, so this is our own. Per item: ``groups`` groups of
``beams_per_group`` beams. At each step the groups choose in order; a token already chosen at this step by earlier
groups of the same item costs ``diversity_penalty`` per use (the penalty enters the beam score, as in the paper's
HuggingFace setting). Each group is an ordinary beam search otherwise: of its top ``2 * beams_per_group`` candidates,
an end-of-sequence ranked within the first ``beams_per_group`` finishes a hypothesis, the first ``beams_per_group``
others continue. Hypotheses are scored ``sum log p / (length + 1) ** length_penalty`` (``+1``: the end token).

Length window: end-of-sequence is forbidden before ``min_new_tokens`` tokens and forced after ``max_new_tokens``.
``no_repeat_ngram_size`` n > 0 forbids a token that would repeat an n-gram already in the beam (n = 1: no token
twice), as transformers' option of that name: an under-trained generator otherwise fills its window with repeats.
``copy_source`` allows only tokens of the item's own input (and the end token): extractive IDs, for a generator that
has not learned to copy rare words (business names) and would otherwise write the same category words for all.
A group stops once it holds ``beams_per_group`` hypotheses and no running beam can still beat the worst of them.
Many items run at once: the encoder runs once, the decoder's key/value cache is reused and reordered; the only
per-step Python loop is over groups (they depend on each other through the penalty).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from seq2seq.decoder import CachedDecoder

NEG = -1e9  # a score that marks an empty slot (finite, so sums stay finite)


@dataclass(frozen=True)
class DiverseBeamConfig:
    groups: int = 10
    beams_per_group: int = 1
    diversity_penalty: float = 1.0
    min_new_tokens: int = 1
    max_new_tokens: int = 10
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 0  # > 0: a beam never repeats an n-gram of its own
    copy_source: bool = False  # only tokens of the item's own input (and the end token)
    early_stopping: bool = False  # True: a group stops at beams_per_group hypotheses (transformers' early_stopping)

    def __post_init__(self):
        if self.groups < 1 or self.beams_per_group < 1:
            raise ValueError("groups and beams_per_group must be >= 1")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError(f"bad length window [{self.min_new_tokens}, {self.max_new_tokens}]")
        if self.no_repeat_ngram_size < 0:
            raise ValueError("no_repeat_ngram_size must be >= 0")


@dataclass
class BeamResult:
    """Per item, ``groups * beams_per_group`` finished hypotheses, best first.

    tokens: (items, candidates, max_new_tokens) content token ids, padded; lengths: (items, candidates);
    scores: (items, candidates) length-normalized (``-inf`` marks an empty candidate); groups: (items, candidates).
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    scores: torch.Tensor
    groups: torch.Tensor

    def sequences(self, item: int) -> list[list[int]]:
        return [self.tokens[item, c, : self.lengths[item, c]].tolist()
                for c in range(self.tokens.shape[1]) if self.scores[item, c] > float("-inf")]


class Constraint(Protocol):
    """Restricts the next token of each beam row (e.g. a prefix trie); follows the beams as they are reordered.

    Only the allowed pairs are scored (no vocabulary-wide mask, add and top-k): little work when few are allowed."""

    def edges(self, alive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, tokens): every allowed (row, next token) pair of the rows where ``alive``, rows ascending, tokens
        ascending within a row. (Other rows could not produce a candidate: empty beam slots, finished groups.)"""

    def advance(self, rows: torch.Tensor, tokens: torch.Tensor) -> None:
        """Row i now continues old row ``rows[i]`` with ``tokens[i]``."""


def _mask_step(logp: torch.Tensor, step: int, cfg: DiverseBeamConfig, eos: int, banned: list[int]) -> None:
    """Length window and banned tokens, in place, on (..., vocab) log-probabilities."""
    if banned:
        logp[..., banned] = float("-inf")
    if step < cfg.min_new_tokens:
        logp[..., eos] = float("-inf")
    if step >= cfg.max_new_tokens:
        keep = logp[..., eos].clone()
        logp.fill_(float("-inf"))
        logp[..., eos] = keep


def _mask_edges(toks: torch.Tensor, vals: torch.Tensor, step: int, cfg: DiverseBeamConfig, eos: int,
                banned: list[int]) -> torch.Tensor:
    """:func:`_mask_step` for the allowed (row, token) pairs only."""
    drop = torch.zeros_like(toks, dtype=torch.bool)
    for b in banned:
        drop |= toks == b
    if step < cfg.min_new_tokens:
        drop |= toks == eos
    if step >= cfg.max_new_tokens:
        drop |= toks != eos
    return vals.masked_fill(drop, float("-inf"))


def repeat_bans(running: torch.Tensor, step: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, tokens) that would repeat an n-gram of their row: ``running[:, :step]`` holds each row's tokens."""
    if n <= 0 or step < n:
        empty = torch.empty(0, dtype=torch.long, device=running.device)
        return empty, empty
    seq = running[:, :step]
    grams = seq.unfold(1, n, 1)  # (rows, step - n + 1, n)
    if n == 1:
        match = torch.ones(grams.shape[:2], dtype=torch.bool, device=seq.device)
    else:
        match = (grams[:, :, :-1] == seq[:, step - n + 1:][:, None, :]).all(-1)
    rows, pos = match.nonzero(as_tuple=True)
    return rows, grams[rows, pos, -1]


def source_vocabulary(input_ids: torch.Tensor, attention_mask: torch.Tensor, vocab: int, eos: int) -> torch.Tensor:
    """(items, vocab) bool: the tokens of each item's input, and the end token."""
    allowed = torch.zeros((input_ids.shape[0], vocab), dtype=torch.bool, device=input_ids.device)
    allowed.scatter_(1, input_ids, attention_mask.bool())
    allowed[:, eos] = True
    return allowed


def _sparse_candidates(rows: torch.Tensor, toks: torch.Tensor, vals: torch.Tensor, N: int, G: int, P: int):
    """Per group: the top ``2P`` (score, beam, token) of each item among the allowed pairs only.

    ``vals`` are the log-probabilities of the pairs ``(rows, toks)``. Pairs are laid out per item in the order of
    the dense path (beam-major, tokens ascending), padded with -inf."""
    item, group, beam = rows // (G * P), (rows // P) % G, rows % P
    dev = vals.device

    def top(g: int, beam_scores: torch.Tensor, counts, penalty: float):
        if G == 1:
            it, bm, tk, v = item, beam, toks, vals
        else:
            sel = group == g
            it, bm, tk, v = item[sel], beam[sel], toks[sel], vals[sel]
        v = v + beam_scores[it, g, bm]
        if counts is not None and penalty and g:
            v = v - penalty * counts[it, tk]
        per = torch.bincount(it, minlength=N)
        pos = torch.arange(it.shape[0], device=dev) - (per.cumsum(0) - per)[it]
        width = max(int(per.max()) if it.numel() else 0, 2 * P)
        dense_s = torch.full((N, width), float("-inf"), device=dev)
        dense_i = torch.zeros((N, width), dtype=torch.long, device=dev)
        dense_s[it, pos] = v
        dense_i[it, pos] = torch.arange(it.shape[0], device=dev)
        top_s, top_i = dense_s.topk(2 * P, dim=1)
        pick = dense_i.gather(1, top_i)
        return top_s, bm[pick], tk[pick]

    return top


@dataclass
class _Finished:
    """Per (item, group) the ``P`` best finished hypotheses so far: length-normalized scores, tokens, lengths."""

    norm: torch.Tensor
    tokens: torch.Tensor
    lengths: torch.Tensor

    @classmethod
    def empty(cls, N: int, G: int, P: int, T: int, pad_token_id: int, dev) -> "_Finished":
        return cls(torch.full((N, G, P), float("-inf"), device=dev),
                   torch.full((N, G, P, max(T, 1)), pad_token_id, dtype=torch.long, device=dev),
                   torch.zeros((N, G, P), dtype=torch.long, device=dev))

    def ranked(self, G: int, P: int) -> BeamResult:
        """Every group's hypotheses of each item, best first."""
        N, C = self.norm.shape[0], G * P
        norm = self.norm.view(N, C)
        order = norm.argsort(dim=1, descending=True, stable=True)
        groups = torch.arange(G, device=norm.device).repeat_interleave(P).expand(N, C)
        return BeamResult(
            tokens=self.tokens.view(N, C, -1).gather(1, order[:, :, None].expand(-1, -1, self.tokens.shape[-1])),
            lengths=self.lengths.view(N, C).gather(1, order), scores=norm.gather(1, order),
            groups=groups.gather(1, order))


def _candidate_scores(dec: CachedDecoder, hidden, V: int, beam_scores, done, running, step: int,
                      cfg: DiverseBeamConfig, eos_token_id: int, banned: list[int], allowed,
                      constraint: Constraint | None):
    """(dense log-probabilities (N, G, P, V), or None; sparse candidates of the constraint's edges, or None), every
    rule of the step applied: end and length window, banned tokens, repeated n-grams, the item's own tokens."""
    N, G, P = beam_scores.shape
    if constraint is not None:
        alive = (beam_scores > NEG / 2) & ~done[:, :, None]
        pair_rows, pair_toks = constraint.edges(alive.view(-1))
        vals = dec.edge_log_probs(hidden, pair_rows, pair_toks)
        vals = _mask_edges(pair_toks, vals, step, cfg, eos_token_id, banned)
        if cfg.no_repeat_ngram_size:
            ban_rows, ban_toks = repeat_bans(running, step, cfg.no_repeat_ngram_size)
            hit = torch.isin(pair_rows * V + pair_toks, ban_rows * V + ban_toks)
            vals = vals.masked_fill(hit, float("-inf"))
        if allowed is not None:
            vals = vals.masked_fill(~allowed[pair_rows // (G * P), pair_toks], float("-inf"))
        return None, _sparse_candidates(pair_rows, pair_toks, vals, N, G, P)
    logp = dec.log_probs(hidden).view(N, G, P, V)
    _mask_step(logp, step, cfg, eos_token_id, banned)
    if cfg.no_repeat_ngram_size:
        ban_rows, ban_toks = repeat_bans(running, step, cfg.no_repeat_ngram_size)
        logp.view(-1, V)[ban_rows, ban_toks] = float("-inf")
    if allowed is not None:
        logp.masked_fill_(~allowed[:, None, None, :], float("-inf"))
    return logp, None


def _group_top(g: int, logp, sparse, beam_scores, counts, penalty: float):
    """(scores, source beam, token) of group ``g``'s 2P best candidates, earlier groups' tokens penalized."""
    if sparse is not None:
        return sparse(g, beam_scores, counts, penalty)
    N, _, P, V = logp.shape
    s = logp[:, g] + beam_scores[:, g, :, None]
    if penalty and g:  # plain beam search (one group, or no penalty) skips this pass
        s -= penalty * counts[:, None, :]
    top_s, top_i = s.view(N, P * V).topk(2 * P, dim=1)
    return top_s, top_i // V, top_i % V


def _finish_candidates(fin: _Finished, g: int, top_s, beam, tok, live, running, row_base, step: int,
                       alpha: float, eos_token_id: int) -> None:
    """Group ``g``'s finished hypotheses: those kept so far and this step's end tokens among its first P
    candidates, the P best by length-normalized score."""
    N, twoP = top_s.shape
    P, dev = twoP // 2, top_s.device
    rank = torch.arange(twoP, device=dev)
    add = (tok == eos_token_id) & (rank < P) & (top_s > NEG / 2) & live[:, None]
    cand_norm = torch.where(add, top_s / float(step + 1) ** alpha, torch.tensor(float("-inf"), device=dev))
    cand_tokens = running[(row_base[:, g, None] + beam).view(-1)].view(N, twoP, -1)
    all_norm = torch.cat([fin.norm[:, g], cand_norm], dim=1)
    all_tokens = torch.cat([fin.tokens[:, g], cand_tokens], dim=1)
    all_len = torch.cat([fin.lengths[:, g], torch.full((N, twoP), step, device=dev, dtype=torch.long)], dim=1)
    best_norm, best_idx = all_norm.topk(P, dim=1)
    fin.norm[:, g] = best_norm
    fin.tokens[:, g] = all_tokens.gather(1, best_idx[:, :, None].expand(-1, -1, all_tokens.shape[-1]))
    fin.lengths[:, g] = all_len.gather(1, best_idx)


@torch.inference_mode()
def diverse_beam_search(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, cfg: DiverseBeamConfig,
                        eos_token_id: int, pad_token_id: int, banned_token_ids: list[int] | None = None,
                        constraint: Constraint | None = None) -> BeamResult:
    """Run the search for a batch of encoder inputs (items, source length).

    With ``groups=1`` and no penalty this is ordinary beam search; ``constraint`` limits the tokens (trie decoding).
    """
    N, G, P, T = input_ids.shape[0], cfg.groups, cfg.beams_per_group, cfg.max_new_tokens
    dev = input_ids.device
    banned = sorted(set(banned_token_ids if banned_token_ids is not None else [pad_token_id]) - {eos_token_id})
    dec = CachedDecoder(model, input_ids, attention_mask, G * P)
    V = model.lm_head.weight.shape[0]
    allowed = source_vocabulary(input_ids, attention_mask, V, eos_token_id) if cfg.copy_source else None

    beam_scores = torch.full((N, G, P), NEG, device=dev)
    beam_scores[:, :, 0] = 0.0  # identical start beams: only the first may extend, as in HuggingFace
    running = torch.full((N * G * P, max(T, 1)), pad_token_id, dtype=torch.long, device=dev)
    fin = _Finished.empty(N, G, P, T, pad_token_id, dev)
    done = torch.zeros((N, G), dtype=torch.bool, device=dev)
    rank = torch.arange(2 * P, device=dev)
    row_base = (torch.arange(N, device=dev)[:, None] * G + torch.arange(G, device=dev)[None, :]) * P  # (N, G)
    last = dec.start()

    for step in range(T + 1):
        hidden = dec.step(last)
        logp, sparse = _candidate_scores(dec, hidden, V, beam_scores, done, running, step, cfg, eos_token_id,
                                         banned, allowed, constraint)
        counts = torch.zeros((N, V), device=dev) if cfg.diversity_penalty and G > 1 else None
        new_scores = beam_scores.clone()
        new_rows = row_base[:, :, None] + torch.arange(P, device=dev)  # default: stay (done groups)
        new_tok = torch.full((N, G, P), pad_token_id, dtype=torch.long, device=dev)
        for g in range(G):
            live = ~done[:, g]  # (N,)
            top_s, beam, tok = _group_top(g, logp, sparse, beam_scores, counts, cfg.diversity_penalty)
            _finish_candidates(fin, g, top_s, beam, tok, live, running, row_base, step, cfg.length_penalty,
                               eos_token_id)
            # continuing beams: the first P candidates that are not the end token
            keep = (tok != eos_token_id) & (top_s > NEG / 2)
            order = torch.where(keep, rank, rank + 2 * P).argsort(dim=1)[:, :P]
            chosen_ok = keep.gather(1, order) & live[:, None]
            chosen_tok = tok.gather(1, order)
            live_rows = live[:, None].expand(-1, P)
            chosen_s = torch.where(chosen_ok, top_s.gather(1, order), torch.tensor(NEG, device=dev))
            new_scores[:, g] = torch.where(live_rows, chosen_s, beam_scores[:, g])
            new_rows[:, g] = torch.where(live_rows, row_base[:, g, None] + beam.gather(1, order), new_rows[:, g])
            new_tok[:, g] = torch.where(chosen_ok, chosen_tok, torch.full_like(chosen_tok, pad_token_id))
            if counts is not None:
                counts.scatter_add_(1, chosen_tok, chosen_ok.float())
        beam_scores = new_scores
        full = torch.isfinite(fin.norm).all(dim=-1)
        bound = beam_scores.max(dim=-1).values / float(T + 1) ** cfg.length_penalty  # best a running beam can reach
        enough = full if cfg.early_stopping else full & (fin.norm.min(dim=-1).values >= bound)
        done |= enough | (step >= T)
        if bool(done.all()):
            break
        rows = new_rows.view(-1)
        dec.reorder(rows)
        if constraint is not None:
            constraint.advance(rows, new_tok.view(-1))
        running = running[rows]
        running[:, step] = new_tok.view(-1)
        last = new_tok.view(-1)
    return fin.ranked(G, P)
