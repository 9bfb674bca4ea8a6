"""Decoding speed: 20 beams over the trie of Beauty's 12,101 real item IDs, batches of 64 users, on the same random
tiny model. Prints users/s of (1) transformers generate + a Python trie callback (the stock approach, baseline),
(2) transformers generate without constraint, (3) ours (tensor trie, batched constrained beam search), all on the same users; the ratios;
how many users got the same ranked top-20 from (1) and (3); and ours on all ``--users`` (longer histories too). Target on CPU: ours >= 10x (1), and not slower than (2).

The IDs are the published initial IDs of Beauty (``idgenrec_phase0_id``, real text, made unique); the prompts are
real test-split histories.

    python bench/decode_bench.py [--users 128] [--baseline-users 64]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import prepared, published_ids, stock_generate_kwargs, stock_rankings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=128)
    ap.add_argument("--baseline-users", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--beams", type=int, default=20)
    ap.add_argument("--model-size", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", type=Path, default=Path("runs/bench"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import torch

    from catalog.split import samples
    from catalog.tokenizer import build_tokenizer, load_tokenizer
    from seq2seq.model import build_model, model_config
    from recommender.decode import recommend
    from recommender.prompts import render_prompt
    from recommender.trie import PythonTrie, Trie

    cat = prepared("Beauty", args.work)
    ids = published_ids(cat)
    tok_dir = args.work / "tokenizer_beauty"
    if not (tok_dir / "tokenizer.json").exists():
        build_tokenizer(cat.texts + ids, tok_dir, vocab_size=8000)
    tok = load_tokenizer(tok_dir)
    dev = torch.device(args.device)
    model = build_model(model_config(args.model_size), tok).to(dev).eval()
    tokens = tok(ids, add_special_tokens=False)["input_ids"]
    trie, ptrie = Trie.build(tokens, tok.eos_token_id, len(tok)).to(dev), PythonTrie(tokens, tok.eos_token_id)
    id_of = dict(zip(cat.item_ids, ids))
    prompts = [render_prompt([id_of[i] for i in s.history]) for s in samples(cat.sequences, "test")][: args.users]
    batches = [tok(prompts[i:i + args.batch_size], padding=True, truncation=True, max_length=512,
                   return_tensors="pt").to(dev) for i in range(0, len(prompts), args.batch_size)]
    n_base = max(1, args.baseline_users // args.batch_size)
    gen = stock_generate_kwargs(args.beams, trie.max_depth)
    results, same = {}, []

    def timed(name, fn, bs):
        fn({k: v[:8] for k, v in bs[0].items()})  # warm-up (first-call allocations), not timed
        t = time.perf_counter()
        outs = [fn(b) for b in bs]
        results[name] = sum(b["input_ids"].shape[0] for b in bs) / (time.perf_counter() - t)
        return outs

    with torch.inference_mode():
        base = timed("transformers_python_trie_users_per_s", lambda b: model.generate(
            **b, **gen, prefix_allowed_tokens_fn=ptrie.prefix_allowed_tokens_fn(tok.pad_token_id)), batches[:n_base])
        timed("transformers_unconstrained_users_per_s", lambda b: model.generate(**b, **gen), batches[:n_base])
        ours_fn = lambda b: recommend(model, b["input_ids"], b["attention_mask"], trie, args.beams, args.beams,
                                      tok.eos_token_id, tok.pad_token_id)
        ours = timed("ours_users_per_s", ours_fn, batches[:n_base])  # the same users as the baselines
        if len(batches) > n_base:
            timed("ours_all_users_per_s", ours_fn, batches)
    for hf, our in zip(base, ours):
        stock = stock_rankings(hf, our.items.shape[0], args.beams, tokens, tok.eos_token_id)
        same += [s == o for s, o in zip(stock, our.items.tolist())]
    results["ours_vs_python_trie"] = results["ours_users_per_s"] / results["transformers_python_trie_users_per_s"]
    results["ours_vs_unconstrained"] = results["ours_users_per_s"] / results["transformers_unconstrained_users_per_s"]
    results["same_top20_fraction"] = sum(same) / max(len(same), 1)
    print(f"decoding: {len(ids)} item IDs, {args.beams} beams, batch {args.batch_size}, model {args.model_size}, "
          f"{args.device}; {n_base * args.batch_size} users (ours_all: {len(prompts)})")
    for k, v in results.items():
        print(f"  {k:40s} {v:10.3f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
