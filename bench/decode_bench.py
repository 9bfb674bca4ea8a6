"""Decoding speed: 20 beams over the trie of Beauty's 12,101 real item IDs, batches of 64 users, on the same random
tiny model. Prints users/s of (1) transformers generate + a Python trie callback (the stock approach, baseline),
(2) transformers generate without constraint, (3) ours (tensor trie, batched constrained beam search), all on the
same users at the same batch; the ratios;
how many users got the same ranked top-20 from (1) and (3); and ours on all ``--users`` at the same batch (longer
histories too). Target on CPU: ours >= 10x (1), and not slower than (2).

The IDs are the published initial IDs of Beauty (``idgenrec_phase0_id``, real text, made unique); the prompts are
real test-split histories.

    python bench/decode_bench.py [--users 128] [--baseline-users 64]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import beauty_published
from speed import decoding_speed


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
    from recommender.prompts import render_prompt
    from seq2seq.model import build_model, model_config

    cat, ids, tok = beauty_published(args.work)
    model = build_model(model_config(args.model_size), tok).to(torch.device(args.device)).eval()
    tokens = tok(ids, add_special_tokens=False)["input_ids"]
    id_of = dict(zip(cat.item_ids, ids))
    prompts = [render_prompt([id_of[i] for i in s.history]) for s in samples(cat.sequences, "test")][: args.users]
    results = decoding_speed(model, tok, tokens, prompts, args.baseline_users, args.batch_size,
                             large_batch=args.batch_size if len(prompts) > args.baseline_users else 0,
                             beams=args.beams)
    print(f"decoding: {len(ids)} item IDs, model {args.model_size}, {args.device}; {results['baseline_setup']}; "
          f"ours_large_batch: all {len(prompts)} users")
    for k, v in results.items():
        if isinstance(v, float):
            print(f"  {k:40s} {v:10.3f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
