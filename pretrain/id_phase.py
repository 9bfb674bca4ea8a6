"""The ID-generator phase of alternate training (the paper's section 2.5), as tensor functions.

The recommender is frozen. For each item in a prompt's history, the generator reads the item text and is
teacher-forced on the item's current ID; its per-step token distributions (softmax of logits: probabilities; the
published code mistakenly used log-probabilities) times the recommender's input embedding matrix give *soft* ID
embeddings, placed into the prompt where the item's ID tokens would be. The loss is the recommender's cross-entropy
of the target item's ID, so its gradient reaches the generator through the soft embeddings only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from catalog.split import MAX_HISTORY

from idgen.tags import generator_input
from recommender.prompts import render_prompt

_SLOT = "\x00"


def soft_id_embeddings(generator_logits: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """(items, length, vocab) logits x (vocab, dim) embedding matrix -> (items, length, dim)."""
    return torch.softmax(generator_logits.float(), dim=-1).to(embedding.dtype) @ embedding


def prompt_pieces(n_items: int, user_id: str | None, template: int) -> list[str | int]:
    """The prompt as text pieces and item slots (ints: position in the history)."""
    text = render_prompt([f"{_SLOT}{k}{_SLOT}" for k in range(n_items)], user_id, template)
    pieces: list[str | int] = []
    for k, part in enumerate(text.split(_SLOT)):
        pieces.append(int(part) if k % 2 else part)
    return [p for p in pieces if p != ""]


@dataclass
class IDPhaseSample:
    history: list[int]        # item rows, oldest first
    target_tokens: list[int]  # the target item's ID tokens
    user_id: str | None = None
    template: int = 0


def id_phase_loss(generator, recommender, tokenizer, samples: list[IDPhaseSample], item_texts: list[str],
                  item_tokens: list[list[int]], max_source_tokens: int = 128, max_prompt_tokens: int = 512
                  ) -> torch.Tensor:
    """The recommender's loss on the targets with soft ID embeddings for every history item.

    ``max_source_tokens`` bounds the generator's input (item text), ``max_prompt_tokens`` the recommender's prompt."""
    device = next(generator.parameters()).device
    items = sorted({i for s in samples for i in s.history})
    row = {item: r for r, item in enumerate(items)}
    enc = tokenizer([generator_input(item_texts[i]) for i in items], truncation=True, max_length=max_source_tokens,
                    padding=True, return_tensors="pt").to(device)
    width = max(len(item_tokens[i]) for i in items)
    labels = torch.tensor([item_tokens[i] + [-100] * (width - len(item_tokens[i])) for i in items], device=device)
    logits = generator(**enc, labels=labels).logits  # teacher-forced on the current IDs: (items, width, vocab)
    table = recommender.get_input_embeddings().weight
    soft = soft_id_embeddings(logits, table)
    eos = table[tokenizer.eos_token_id]
    sequences = []
    for s in samples:
        parts = []
        for piece in prompt_pieces(len(s.history), s.user_id, s.template):
            if isinstance(piece, int):
                item = s.history[piece]
                parts.append(soft[row[item], : len(item_tokens[item])])
            else:
                ids = tokenizer(piece, add_special_tokens=False)["input_ids"]
                if ids:
                    parts.append(table[torch.tensor(ids, device=device)])
        parts.append(eos[None])
        sequences.append(torch.cat(parts)[:max_prompt_tokens])  # same budget as the recommender's prompts
    length = max(x.shape[0] for x in sequences)
    embeds = torch.stack([torch.cat([x, x.new_zeros(length - x.shape[0], x.shape[1])]) for x in sequences])
    mask = torch.tensor([[1] * x.shape[0] + [0] * (length - x.shape[0]) for x in sequences], device=device)
    tw = max(len(s.target_tokens) + 1 for s in samples)
    target = torch.tensor([s.target_tokens + [tokenizer.eos_token_id] + [-100] * (tw - len(s.target_tokens) - 1)
                           for s in samples], device=device)
    return recommender(inputs_embeds=embeds, attention_mask=mask, labels=target).loss


def train_generator(generator_dir, recommender_dir, catalog_dir, ids_dir, out, steps: int = 100,
                    lr: float = 1e-4, batch_size: int = 16, max_history: int = MAX_HISTORY, seed: int = 0,
                    device: str = "auto") -> dict:
    """One generator phase: ``steps`` batches of training samples, recommender frozen; saves the generator."""
    import random

    from catalog.heldout import catalog_domains, domains_seen
    from catalog.id_table import item_id_tokens
    from catalog.split import samples as split_samples
    from catalog.store import read_catalog
    from catalog.tokenizer import require_same_tokenizer
    from infra.device import resolve_device
    from infra.progress import progress
    from recommender.prompts import pick_template
    from seq2seq.model import load_model_and_tokenizer, model_meta, save_model

    gen, tok = load_model_and_tokenizer(generator_dir)
    rec, rec_tok = load_model_and_tokenizer(recommender_dir)
    # soft ID embeddings weight the recommender's embedding rows by the generator's token probabilities: both must
    # mean the same token by the same id
    require_same_tokenizer(tok, f"the generator {generator_dir}", rec_tok, f"the recommender {recommender_dir}")
    device = resolve_device(device)
    gen, rec = gen.to(device).train(), rec.to(device).eval()
    rec.requires_grad_(False)
    cat = read_catalog(catalog_dir)
    texts, tokens = item_id_tokens(ids_dir, cat.item_ids, tok)
    row = cat.item_index()
    pool = list(split_samples(cat.sequences, "train", max_history))
    rng = random.Random(seed)
    opt = torch.optim.AdamW(gen.parameters(), lr=lr)
    losses = []
    for _ in (bar := progress(range(steps), desc="generator phase", unit="step")):
        batch = [IDPhaseSample([row[i] for i in s.history], tokens[row[s.target]], template=pick_template(rng))
                 for s in rng.sample(pool, min(batch_size, len(pool)))]
        loss = id_phase_loss(gen, rec, tok, batch, cat.texts, tokens)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(gen.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    seen = domains_seen(generator_dir) | domains_seen(recommender_dir) | catalog_domains(cat)
    # the generator's record (its source length) carried over
    save_model(gen.eval(), tok, out, model_meta(generator_dir) | {"domains_seen": sorted(seen)})
    return {"steps": steps, "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}
