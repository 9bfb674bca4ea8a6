"""Speed measurements shared by the benchmarks: ours against the stock approach, on the same inputs, in one run.

Each function returns users/s (or items/s, samples/s) of both sides, their ratio, peak GPU memory, and a
``baseline_setup`` line that says exactly what the baseline ran.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from common import peak_mb, reset_peak, stock_generate_kwargs, stock_rankings


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def decoding_speed(model, tok, tokens: list[list[int]], prompts: list[str], compared_users: int, batch: int,
                   large_batch: int = 0, beams: int = 20) -> dict:
    """20-beam trie decoding over the items whose ID tokens are ``tokens``: ours vs transformers ``generate`` with a
    Python trie callback (and unconstrained), on the first ``compared_users`` prompts at the same ``batch``; ours
    at ``large_batch`` over all ``prompts`` beside it (0: skip). Also how many users got the same ranked top-k."""
    from recommender.decode import recommend
    from recommender.trie import PythonTrie, Trie

    device = next(model.parameters()).device
    trie, ptrie = Trie.build(tokens, tok.eos_token_id, len(tok)).to(device), PythonTrie(tokens, tok.eos_token_id)

    def batches(n: int, size: int) -> list:
        return [tok(prompts[i:min(i + size, n)], truncation=True, max_length=512, padding=True,
                    return_tensors="pt").to(device) for i in range(0, n, size)]

    same = batches(compared_users, batch)
    out: dict = {"items": len(tokens), "beams": beams, "dtype": str(next(model.parameters()).dtype),
                 "compared_users": compared_users, "batch": batch,
                 "baseline_setup": f"transformers generate(num_beams={beams}, prefix_allowed_tokens_fn=Python trie), "
                                   f"same {compared_users} users, same batch {batch}, same model and dtype"}

    def timed(name: str, fn, bs):
        with torch.inference_mode():
            fn({k: v[:4] for k, v in bs[0].items()})  # warm-up (first-call allocations), not timed
            reset_peak(device)
            t = time.perf_counter()
            res = [fn(b) for b in bs]
            sync(device)
        out[f"{name}_users_per_s"] = sum(b["input_ids"].shape[0] for b in bs) / (time.perf_counter() - t)
        out[f"{name}_peak_mb"] = peak_mb(device)
        return res

    gen = stock_generate_kwargs(beams, trie.max_depth)
    ours_fn = lambda b: recommend(model, b["input_ids"], b["attention_mask"], trie, beams, beams, tok.eos_token_id,
                                  tok.pad_token_id)
    hf = timed("transformers_python_trie", lambda b: model.generate(
        **b, **gen, prefix_allowed_tokens_fn=ptrie.prefix_allowed_tokens_fn(tok.pad_token_id)), same)
    timed("transformers_unconstrained", lambda b: model.generate(**b, **gen), same)
    ours = timed("ours", ours_fn, same)
    if large_batch:
        timed("ours_large_batch", ours_fn, batches(len(prompts), large_batch))
        out |= {"large_batch": large_batch, "large_batch_users": len(prompts)}
    agree = top1 = n = 0
    for h, o in zip(hf, ours):
        for stock, mine in zip(stock_rankings(h, o.items.shape[0], beams, tokens, tok.eos_token_id),
                               o.items.tolist()):
            agree, top1, n = agree + (stock == mine), top1 + (stock[0] == mine[0]), n + 1
    out["same_top20_fraction"], out["same_top1_fraction"] = agree / max(n, 1), top1 / max(n, 1)
    out["ratio_vs_python_trie"] = out["ours_users_per_s"] / out["transformers_python_trie_users_per_s"]
    out["ratio_vs_unconstrained"] = out["ours_users_per_s"] / out["transformers_unconstrained_users_per_s"]
    return out


def id_generation_speed(model, tok, texts: list[str], batch: int, source_tokens: int = 64) -> dict:
    """One Algorithm 1 attempt (k = 10 groups, lambda 1, window [1, 10]) for the same ``texts``: the published
    code's one-item-at-a-time loop vs our batched generator."""
    from idgen.algorithm1 import Algorithm1Config, State
    from idgen.proposer import Proposer

    device = next(model.parameters()).device
    a1 = Algorithm1Config()
    serial = Proposer(model, tok, a1, batch_size=1, max_source_tokens=source_tokens, device=device)
    ours = Proposer(model, tok, a1, batch_size=batch, max_source_tokens=source_tokens, device=device)
    result = {"compared_items": len(texts), "batch": batch, "dtype": str(next(model.parameters()).dtype),
              "baseline_setup": f"one item at a time (the published code's way), same model, same {len(texts)} "
                                "items, one attempt (k=10, lambda 1, window [1,10])"}
    serial([texts[0]], State())  # warm-up, not timed
    ours(texts[:2], State())
    for name, fn in (("one_at_a_time", lambda: [serial([t], State()) for t in texts]),
                     ("ours", lambda: ours(texts, State()))):
        reset_peak(device)
        t = time.perf_counter()
        fn()
        sync(device)
        result[f"{name}_items_per_s"] = len(texts) / (time.perf_counter() - t)
        result[f"{name}_peak_mb"] = peak_mb(device)
    result["ratio"] = result["ours_items_per_s"] / result["one_at_a_time_items_per_s"]
    return result


def training_speed(shards: Path, tokenizer_dir: Path, size: str, micro_batch: int, steps: int, work: Path,
                   device: torch.device, warm: int = 5) -> dict:
    """Samples/s over the same optimizer steps (after the same warm-up) on the same shards at the same micro-batch
    and precision: the best plain loop a user would write (bf16 autocast and fused AdamW on a GPU, tokenizing in the
    loop, ``loss.item()`` each step) against our trainer (``pretrain.train``, engine torch), fresh models of
    ``size``."""
    from catalog.tokenizer import load_tokenizer
    from eval.runs import TrainingRun
    from pretrain.data import rank_batches
    from pretrain.train import TrainConfig, train
    from seq2seq.batching import seq2seq_batch
    from seq2seq.model import build_model, model_config

    bf16 = device.type == "cuda"
    precision = "bf16 autocast, fused AdamW" if bf16 else "fp32, AdamW (CPU)"
    tok = load_tokenizer(tokenizer_dir)
    model = build_model(model_config(size), tok).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, fused=True if bf16 else None)
    reset_peak(device)
    seen, t = 0, None
    for step, batch in enumerate(rank_batches(shards, micro_batch)):
        if step == warm:
            sync(device)
            t, seen = time.perf_counter(), 0
        if step >= warm + steps:
            break
        inputs = seq2seq_batch(tok, [b["src"] for b in batch], [b["tgt"] for b in batch], 512, 32, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        seen += len(batch)
    sync(device)
    plain = seen / (time.perf_counter() - t) if t else float("nan")
    plain_peak = peak_mb(device)
    del model, opt
    reset_peak(device)
    train(TrainConfig(shards=shards, out=work, tokenizer=tokenizer_dir, model_size=size, engine="torch",
                      zero_stage=0, micro_batch=micro_batch, lr=1e-3, warmup_steps=0, epochs=1, save_every=10 ** 9,
                      log_every=1, bf16=bf16, max_steps=warm + steps))
    log = {r["step"]: r for r in TrainingRun(work).records()}
    a, b = log[warm], log[warm + steps]
    ours = (b["samples"] - a["samples"]) / (b["elapsed_s"] - a["elapsed_s"])
    return {"plain_transformers_samples_per_s": plain, "ours_samples_per_s": ours, "ratio": ours / plain,
            "plain_peak_mb": plain_peak, "ours_peak_mb": peak_mb(device), "steps": steps, "warmup_steps": warm,
            "micro_batch": micro_batch, "precision": precision,
            "baseline_setup": f"plain transformers loop, {precision}, micro-batch {micro_batch}, same shards, "
                              f"same {steps} steps after {warm} warm-up steps"}
