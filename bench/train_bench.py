"""Training throughput of the DeepSpeed trainer on CPU: samples/s with 1 and 2 ranks on the same shards, and the
ratio, measured in one run. Shards: the train split of 1,500 real Beauty users, with the published initial IDs.

    python bench/train_bench.py [--users 1500] [--model-size mini] [--micro-batch 32]
"""
from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from common import SHARED_DATA, published_ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1500)
    ap.add_argument("--model-size", default="mini")
    ap.add_argument("--micro-batch", type=int, default=32)
    ap.add_argument("--zero-stage", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("runs/train_bench"))
    args = ap.parse_args()

    from catalog.id_table import ITEM_TABLE, write_id_table
    from catalog.prepare import PrepareConfig, prepare
    from catalog.sample import write_slice
    from catalog.tokenizer import build_tokenizer
    from eval.runs import TrainingRun
    from pretrain.launch import launch_train
    from pretrain.shards import ShardsConfig, write_shards

    w = args.work
    if not (w / "shards" / "manifest.json").exists():
        write_slice(SHARED_DATA / "Beauty", w / "data", args.users, seed=0)
        cat = prepare(PrepareConfig(data=w / "data", out=w / "catalog", domain="Beauty"))
        ids = published_ids(cat)
        tok = build_tokenizer(cat.texts + ids, w / "tokenizer", vocab_size=8000)
        write_id_table(w / "ids" / ITEM_TABLE, {"item_id": cat.item_ids}, ids, tok)
        write_shards(ShardsConfig(catalog=[w / "catalog"], ids=[w / "ids"], out=w / "shards", samples_per_shard=500))
    results = {}
    for procs in (1, 2):
        out = w / f"run_{procs}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        t = time.time()
        launch_train(procs, ["--shards", w / "shards", "--out", out, "--tokenizer", w / "tokenizer", "--model-size",
                             args.model_size, "--micro-batch", args.micro_batch, "--zero-stage", args.zero_stage,
                             "--log-every", 5, "--save-every", 100000], check=True, capture_output=True)
        log = TrainingRun(out).records()
        results[f"ranks_{procs}_samples_per_s"] = log[-1]["samples_per_s"]
        results[f"ranks_{procs}_wall_s"] = time.time() - t
    results["two_ranks_vs_one"] = results["ranks_2_samples_per_s"] / results["ranks_1_samples_per_s"]
    print(f"training, {args.model_size}, micro-batch {args.micro_batch} per rank, ZeRO-{args.zero_stage}, CPU")
    for k, v in results.items():
        print(f"  {k:26s} {v:10.2f}")


if __name__ == "__main__":
    main()
