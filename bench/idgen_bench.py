"""ID generation speed on real Toys items: one Algorithm 1 attempt (k = 10 groups, lambda 1, window [1, 10]).

Prints items/s of (1) the serial one-item-at-a-time loop the published code uses (baseline), (2) our batched
generator in one process on the same items (the headline ratio) and on all ``--items``, (3) batched in 1 Ray actor,
(4) in 2 Ray actors (both on all ``--items``); and the ratios, all measured in this run with the same model.
Target on CPU: batched >= 5x serial; 2 actors >= 1.6x one actor.

    python bench/idgen_bench.py [--items 2000] [--serial-items 150] [--model DIR]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import generator_dir, prepared
from speed import id_generation_speed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=2000, help="items for the batched runs")
    ap.add_argument("--serial-items", type=int, default=150, help="items for the serial baseline (it is slow)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--shard-size", type=int, default=256)
    ap.add_argument("--model", type=Path, help="generator directory (default: a random mini T5 + Toys tokenizer)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the actors then share the GPU)")
    ap.add_argument("--work", type=Path, default=Path("runs/bench"))
    ap.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = ap.parse_args()

    import ray
    import torch
    from ray.util import ActorPool

    from cluster.generator_actor import GeneratorActor
    from cluster.ray_session import start_ray, stop_ray
    from idgen.algorithm1 import Algorithm1Config, State
    from idgen.proposer import Proposer
    from seq2seq.model import load_model_and_tokenizer

    torch.set_num_threads(1)  # one core, like one actor
    cat = prepared("Toys", args.work)
    model_dir = args.model or generator_dir(cat.texts, args.work)
    texts = cat.texts[: args.items]
    a1 = Algorithm1Config()
    model, tok = load_model_and_tokenizer(model_dir)
    model = model.to(args.device)
    results: dict[str, float] = {}

    same = id_generation_speed(model, tok, texts[: args.serial_items], args.batch_size)
    results["serial_items_per_s"], results["batched_items_per_s"] = (same["one_at_a_time_items_per_s"],
                                                                     same["ours_items_per_s"])
    batched = Proposer(model, tok, a1, batch_size=args.batch_size, max_source_tokens=64, device=args.device)
    t = time.perf_counter()
    batched(texts, State())
    results["batched_all_items_per_s"] = len(texts) / (time.perf_counter() - t)

    start_ray(None, 2)
    shards = [texts[i:i + args.shard_size] for i in range(0, len(texts), args.shard_size)]
    for n in (1, 2):
        opts = {"num_gpus": 1.0 / n} if args.device == "cuda" else {}  # n actors share one card
        actors = [GeneratorActor.options(**opts).remote(str(model_dir), vars(a1), args.batch_size, 64, args.device)
                  for _ in range(n)]
        ray.get([a.peak_memory_mb.remote() for a in actors])  # loaded
        t = time.perf_counter()
        list(ActorPool(actors).map(lambda a, j: a.propose.remote(j, shards[j], [(0, 0)] * len(shards[j])),
                                   range(len(shards))))
        results[f"actors_{n}_items_per_s"] = len(texts) / (time.perf_counter() - t)
        for a in actors:
            ray.kill(a)
    stop_ray()

    results["batched_vs_serial"] = results["batched_items_per_s"] / results["serial_items_per_s"]
    results["two_actors_vs_one"] = results["actors_2_items_per_s"] / results["actors_1_items_per_s"]
    print(f"ID generation, Toys, k=10 groups, window [1,10], one attempt, same model, 1 thread per process. "
          f"Baseline: one item at a time (the published code's way). batched_vs_serial: both on the same "
          f"{args.serial_items} items; batched_all and the actors: {len(texts)} items (all of them, same for each)")
    for k, v in results.items():
        print(f"  {k:24s} {v:10.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
