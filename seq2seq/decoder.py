"""A T5 decoder run one token at a time for beam search: encoder once, the beams of an input share its
cross-attention keys and values, a key/value cache for the decoder's own tokens.

Shared by the diverse beam search (ID generation) and the constrained beam search (recommendation). It runs the
decoder layers of a transformers ``T5ForConditionalGeneration`` with that model's own weights and sub-modules
(layer norms, feed-forward, relative position bias), so it works for any T5 variant (ReLU or gated-GELU, scaled
or unscaled output), and is checked against the model's own forward in tests. Why not the model's forward:
with ``E`` beams per input, transformers copies every input's cross-attention keys and values ``E`` times and
attends from each beam separately; here the ``E`` beams are the ``E`` queries of one attention call over one
copy. The output projection is also applied in row chunks into one reused buffer: allocating a fresh
(rows x vocabulary) tensor every step costs more (page faults) than the matrix product itself on CPU.
"""
from __future__ import annotations

import torch

# rows x vocabulary per chunk of the output projection: 1 MB on CPU (stays in L2); on a GPU, whole batches
LOGIT_CHUNK_ELEMENTS = {"cpu": 1 << 18, "cuda": 1 << 28}


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """T5 attention (no 1/sqrt(d) scaling; position bias and mask are added): (..., queries, d_kv).

    Plain products: for one query per row (or a few beams per input) this beats the fused kernels on CPU."""
    return torch.matmul(torch.softmax(torch.matmul(q, k.transpose(-1, -2)) + bias, dim=-1), v)


def _log_sum_exp(x: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """Row-wise log-sum-exp of a float32 (rows, n) ``x``, using ``scratch`` (same shape; may be ``x`` itself,
    which is then overwritten) instead of allocating temporaries of that size."""
    top = x.amax(dim=-1, keepdim=True)
    torch.sub(x, top, out=scratch)
    return scratch.exp_().sum(dim=-1).log_().add_(top[:, 0])


class CachedDecoder:
    """The decoder state of a batch of ``N`` inputs, each followed by ``expand`` beams (rows ``n * expand + e``)."""

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor, expand: int):
        cfg = model.config
        self.model, self.expand = model, expand
        self.blocks = model.decoder.block
        self.heads, self.d_kv = cfg.num_heads, cfg.d_kv
        self.start_token = cfg.decoder_start_token_id
        self.scale = cfg.d_model ** -0.5 if getattr(cfg, "scale_decoder_outputs", cfg.tie_word_embeddings) else 1.0
        encoded = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        n, s = input_ids.shape
        # additive mask over source positions, broadcast over heads and beams: (N, 1, 1, S)
        self.source_mask = torch.zeros((n, 1, 1, s), dtype=encoded.dtype, device=input_ids.device).masked_fill(
            attention_mask[:, None, None, :] == 0, torch.finfo(encoded.dtype).min)
        cross = [b.layer[1].EncDecAttention for b in self.blocks]
        self.cross = [(self._heads(a.k(encoded)), self._heads(a.v(encoded))) for a in cross]
        self.own: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer (rows, heads, steps, d_kv)
        self.steps = 0
        self.n = n
        self._buffers: dict[tuple[str, torch.dtype], torch.Tensor] = {}

    @property
    def rows(self) -> int:
        return self.n * self.expand

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, length, heads * d_kv) -> (batch, heads, length, d_kv)."""
        return x.view(x.shape[0], x.shape[1], self.heads, self.d_kv).transpose(1, 2)

    def start(self) -> torch.Tensor:
        return torch.full((self.rows,), self.start_token, dtype=torch.long, device=self.source_mask.device)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row; return the final hidden states (rows, d_model), ready for the output projection.

        The first step feeds the start token, the same for every beam of an input: it runs once per input and its
        cache is then repeated for the beams."""
        first = self.steps == 0
        per_input = 1 if first else self.expand
        if first:
            tokens = tokens.view(self.n, self.expand)[:, 0]
        h = self.model.decoder.embed_tokens(tokens)[:, None, :]  # (rows, 1, d)
        t = self.steps
        bias = self._position_bias(t, h.device)
        for i, block in enumerate(self.blocks):
            sa = block.layer[0].SelfAttention
            x = block.layer[0].layer_norm(h)
            q, k, v = self._heads(sa.q(x)), self._heads(sa.k(x)), self._heads(sa.v(x))
            if not first:
                k, v = torch.cat([self.own[i][0], k], dim=2), torch.cat([self.own[i][1], v], dim=2)
                self.own[i] = (k, v)
            else:
                self.own.append((k, v))
            a = _attend(q, k, v, bias.to(q.dtype))
            h = h + sa.o(a.transpose(1, 2).reshape(h.shape[0], 1, -1))
            ca = block.layer[1].EncDecAttention
            x = block.layer[1].layer_norm(h)
            # the beams of an input are the queries of one attention over that input's single key/value copy
            q = ca.q(x).view(self.n, per_input, self.heads, self.d_kv).transpose(1, 2)  # (N, heads, E, d_kv)
            a = _attend(q, *self.cross[i], self.source_mask)
            h = h + ca.o(a.transpose(1, 2).reshape(h.shape[0], 1, -1))
            h = block.layer[-1](h)
        h = self.model.decoder.final_layer_norm(h)[:, 0] * self.scale
        if first:
            h = h.repeat_interleave(self.expand, dim=0)
            self.own = [(k.repeat_interleave(self.expand, dim=0), v.repeat_interleave(self.expand, dim=0))
                        for k, v in self.own]
        self.steps += 1
        return h

    def _position_bias(self, t: int, device: torch.device) -> torch.Tensor:
        """T5's relative position bias of the query at position ``t`` over keys ``0..t``: (1, heads, 1, t + 1).

        Built from the static bucket function and the bias table (stable across transformers versions, unlike
        ``compute_bias``'s signature)."""
        sa, cfg = self.blocks[0].layer[0].SelfAttention, self.model.config
        buckets = sa._relative_position_bucket(torch.arange(t + 1, device=device) - t, bidirectional=False,
                                               num_buckets=cfg.relative_attention_num_buckets,
                                               max_distance=cfg.relative_attention_max_distance)
        return sa.relative_attention_bias(buckets).T[None, :, None, :]

    def log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token log-probabilities over the whole vocabulary, (rows, vocab) in float32.

        The result lives in a buffer this decoder reuses at its next call (callers use it within the step)."""
        weight = self.model.lm_head.weight
        R, V = hidden.shape[0], weight.shape[0]
        logits = self._scratch("logits", R, V, torch.float32, hidden.device)
        if hidden.dtype == torch.float32:
            torch.mm(hidden, weight.T, out=logits)
        else:
            logits.copy_(hidden @ weight.T)
        chunk = self._chunk_rows(V, hidden.device)
        tmp = self._scratch("chunk", min(chunk, R), V, torch.float32, hidden.device)
        for r0 in range(0, R, chunk):
            part = logits[r0:r0 + chunk]
            part.sub_(_log_sum_exp(part, tmp[: part.shape[0]])[:, None])
        return logits

    def edge_log_probs(self, hidden: torch.Tensor, rows: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """log p(``tokens[j]`` | row ``rows[j]``) for given pairs (``rows`` ascending), in float32.

        Only rows that appear in a pair are projected. Normalizing needs each such row's every logit, but they are
        never stored: the projection runs in row chunks into one buffer, and each chunk's log-sum-exp is taken and
        its wanted logits picked out while it is hot in cache."""
        if rows.numel() == 0:
            return torch.empty(0, dtype=torch.float32, device=hidden.device)
        needed, per_row = torch.unique_consecutive(rows, return_counts=True)
        hidden = hidden.index_select(0, needed)
        rows = torch.repeat_interleave(torch.arange(needed.shape[0], device=rows.device), per_row)
        weight = self.model.lm_head.weight
        R, V = hidden.shape[0], weight.shape[0]
        chunk = self._chunk_rows(V, hidden.device)
        buf = self._scratch("chunk", min(chunk, R), V, hidden.dtype, hidden.device)
        out = torch.empty(rows.shape[0], dtype=torch.float32, device=hidden.device)
        ends = (per_row.cumsum(0)[chunk - 1::chunk]).tolist()
        e0 = 0
        for r0, e1 in zip(range(0, R, chunk), ends + [rows.shape[0]]):
            part = buf[: min(chunk, R - r0)]
            torch.mm(hidden[r0:r0 + chunk], weight.T, out=part)
            logits = part if part.dtype == torch.float32 else part.float()
            sel = rows[e0:e1] - r0
            picked = logits[sel, tokens[e0:e1]]
            out[e0:e1] = picked - _log_sum_exp(logits, logits)[sel]
            e0 = e1
        return out

    def _scratch(self, name: str, rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A (rows, cols) buffer kept for the next steps: one allocation per search, not one per step."""
        buf = self._buffers.get((name, dtype))
        if buf is None or buf.numel() < rows * cols:
            buf = self._buffers[(name, dtype)] = torch.empty(rows * cols, dtype=dtype, device=device)
        return buf[: rows * cols].view(rows, cols)

    @staticmethod
    def _chunk_rows(vocab: int, device: torch.device) -> int:
        return max(1, LOGIT_CHUNK_ELEMENTS.get(device.type, 1 << 20) // vocab)

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i continues the beam that was in row ``rows[i]`` (always a row of the same input)."""
        self.own = [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in self.own]
