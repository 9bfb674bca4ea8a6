"""``idgenrec idgen-warmstart``: teach a fresh (or local pretrained) T5 to write extractive tags for items.

After it, IDs read like the paper's Figure 3 (``chi pro hair dryer diffuser``) rather than token noise.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from catalog.heldout import catalog_domains, check_unseen, dataset_name, declared_heldout, domains_seen
from catalog.store import Catalog, read_catalog
from idgen.tags import extract_tags, generator_input, word_overlap
from infra.device import resolve_device
from infra.progress import progress
from seq2seq.batching import seq2seq_batch
from seq2seq.beam_search import DiverseBeamConfig, diverse_beam_search
from seq2seq.model import save_model, start_model
from seq2seq.schedule import warmup_constant

log = logging.getLogger(__name__)


@dataclass
class WarmStartConfig:
    catalog: list[Path] = field(default_factory=list)
    tokenizer: Path | None = None
    out: Path | None = None
    model_size: str | None = None
    pretrained: Path | None = None
    heldout: list[Path] = field(default_factory=list)
    steps: int = 3000
    min_epochs: float = 20.0
    batch_size: int = 32
    lr: float = 3e-3
    dropout: float | None = None
    max_source_tokens: int = 64
    max_tag_words: int = 8
    seed: int = 0
    device: str = "auto"
    bf16: bool = False  # autocast (float32 weights); for GPUs

    def check(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.min_epochs < 0:
            raise ValueError("steps and min_epochs must be >= 0, batch_size >= 1")

    def steps_for(self, items: int) -> int:
        """``steps``, raised to ``min_epochs`` passes over ``items`` texts: a fresh generator must first leave
        the plateau where it writes the catalog's frequent words for every item (about 1,300-2,000 steps on
        Office_Industrial) and then learn each item's words, which takes passes over the catalog."""
        return max(self.steps, math.ceil(self.min_epochs * items / self.batch_size))


HELP = {"max_tag_words": "words of the warm-start targets (salient title words + leaf category): how long "
                         "the generator's IDs are",
        "catalog": "catalog directories", "tokenizer": "tokenizer directory",
        "out": "generator directory to write (model + tokenizer)",
        "model_size": "tiny, mini (the default) or small, or a YAML path; with pretrained it must match the "
                      "checkpoint's architecture",
        "pretrained": "local T5 directory to start from instead",
        "heldout": "datasets or catalogs kept for zero-shot evaluation: refused",
        "dropout": "dropout of the generator while it learns (default: the size's or the checkpoint's); its IDs "
                   "are mostly written for the items it learns on, so memorizing them does little harm",
        "min_epochs": "at least this many passes over the catalog's texts (raises steps on large catalogs; 0: off)",
        "device": "auto (a GPU when present), cpu or cuda"}


def load_pairs(catalogs: list[Catalog], max_tag_words: int) -> tuple[list[str], list[str], list[str | None]]:
    """(item texts, tag targets, published initial IDs where the data has them) over all catalogs."""
    texts, tags, published = [], [], []
    for cat in catalogs:
        for fields, text in zip(cat.fields, cat.texts):
            if text:
                texts.append(generator_input(text))
                tags.append(extract_tags(fields, text, max_tag_words))
                published.append(fields.get("idgenrec_phase0_id"))
    return texts, tags, published


def greedy_ids(model, tokenizer, texts: list[str], max_source_tokens: int, max_new: int = 10) -> list[str]:
    """One beam per text (plain beam search of width 1 through our search), decoded."""
    enc = tokenizer(texts, truncation=True, max_length=max_source_tokens, padding=True, return_tensors="pt")
    res = diverse_beam_search(model, enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device),
                              DiverseBeamConfig(groups=1, diversity_penalty=0.0, max_new_tokens=max_new),
                              tokenizer.eos_token_id, tokenizer.pad_token_id)
    return [tokenizer.decode(res.sequences(n)[0], skip_special_tokens=True) for n in range(len(texts))]


def loss_curve(losses: list[float], points: int = 20) -> list[list[float]]:
    """[step, mean loss of the interval ending at that step] over ``points`` even intervals: shows whether the
    generator left the plateau where it writes frequent words whatever the item (a fresh T5 learns to copy late,
    and at once)."""
    if not losses:
        return []
    width = max(1, len(losses) // points)
    return [[i + width, round(sum(losses[i:i + width]) / len(losses[i:i + width]), 3)]
            for i in range(0, len(losses) - width + 1, width)]


def warmstart(cfg: WarmStartConfig) -> dict:
    if not cfg.catalog or cfg.tokenizer is None or cfg.out is None:
        raise ValueError("idgen-warmstart needs catalog, tokenizer and out")
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    catalogs = {str(c): read_catalog(c) for c in cfg.catalog}
    domains = {src: catalog_domains(c) for src, c in catalogs.items()}
    check_unseen(domains, {dataset_name(h) for h in cfg.heldout} | declared_heldout(catalogs.values()), "warm start")
    model, tok = start_model(cfg.pretrained, cfg.tokenizer, cfg.model_size, "mini", cfg.seed, cfg.dropout,
                             what="pretrained")
    model = model.to(device).train()
    seen = set().union(*domains.values(), domains_seen(cfg.tokenizer), domains_seen(cfg.pretrained))
    texts, tags, published = load_pairs(list(catalogs.values()), cfg.max_tag_words)
    steps = cfg.steps_for(len(texts))
    log.info("warm start on %d items, %d steps of %d", len(texts), steps, cfg.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_constant(s, 1.0, steps // 10))
    rng = random.Random(cfg.seed)
    order: list[int] = []
    losses, t0 = [], time.time()
    for _ in (bar := progress(range(steps), desc="warm start", unit="step")):
        if len(order) < cfg.batch_size:
            order += rng.sample(range(len(texts)), len(texts))
        idx, order = order[:cfg.batch_size], order[cfg.batch_size:]
        batch = seq2seq_batch(tok, [texts[i] for i in idx], [tags[i] for i in idx], cfg.max_source_tokens,
                              cfg.max_tag_words * 3, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    model.eval()
    save_model(model, tok, cfg.out, {"domains_seen": sorted(seen), "max_source_tokens": cfg.max_source_tokens})
    sample = random.Random(cfg.seed + 1).sample(range(len(texts)), min(200, len(texts)))
    ours = greedy_ids(model, tok, [texts[i] for i in sample], cfg.max_source_tokens)
    with_ref = [(o, published[i]) for o, i in zip(ours, sample) if published[i]]
    report = {
        "items": len(texts), "steps": steps, "seconds": round(time.time() - t0, 1),
        "first_loss": losses[0] if losses else None, "last_loss": sum(losses[-20:]) / max(len(losses[-20:]), 1),
        "loss_curve": loss_curve(losses),
        "overlap_with_published_initial_ids": (sum(word_overlap(o, r) for o, r in with_ref) / len(with_ref)
                                               if with_ref else None),
        "overlap_with_tag_targets": sum(word_overlap(o, tags[i]) for o, i in zip(ours, sample)) / len(sample),
        "examples": [{"text": texts[i][:120], "id": o, "published": published[i]}
                     for o, i in list(zip(ours, sample))[:10]],
    }
    (Path(cfg.out) / "warmstart.json").write_text(json.dumps(report, indent=2))
    blank = sum(not o.strip() for o in ours)
    if blank or report["overlap_with_tag_targets"] < 0.05:
        log.warning("the generator has not learned to write IDs yet: %d of %d sampled IDs are blank, word overlap "
                    "with the targets %.2f (train longer: --steps / --min-epochs); the ID job refuses blank IDs",
                    blank, len(ours), report["overlap_with_tag_targets"])
    return report
