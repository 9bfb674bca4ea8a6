"""`idgenrec recommend` throughput: users/s in this process, with 1 Ray actor and with 2, on the same histories.

Beauty's real test-split histories and its published initial IDs (real text, made unique; 12,101 items) with a
random model of ``--model-size``: speed does not depend on training. The same histories, chunks, beams and k for
every setting, each run from a cold start of its workers (model loading included, as a user's job pays it). The
headline ratio is 2 actors against 1.

    python bench/recommend_bench.py [--users 1024] [--model-size tiny]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import beauty_published


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1024)
    ap.add_argument("--model-size", default="tiny")
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--work", type=Path, default=Path("runs/bench"))
    args = ap.parse_args()

    import torch

    from catalog.id_table import ITEM_TABLE, write_id_table
    from catalog.split import samples
    from cluster.recommend import RecommendConfig, run_recommend
    from seq2seq.model import build_model, model_config, save_model

    cat, ids, tok = beauty_published(args.work)
    work = args.work / "recommend_bench"
    save_model(build_model(model_config(args.model_size), tok), tok, work / "model")
    write_id_table(work / "ids" / ITEM_TABLE, {"item_id": cat.item_ids}, ids, tok)
    todo = list(samples(cat.sequences, "test"))[: args.users]
    (work / "histories.txt").write_text("".join(f"{cat.users[s.user]} {' '.join(s.history)}\n" for s in todo))
    base = dict(model=work / "model", ids=work / "ids", histories=work / "histories.txt", k=10, beams=20,
                chunk=args.chunk, device="cpu")
    results, outputs = {}, {}
    for name, actors in (("this process, 1 thread", 0), ("1 actor", 1), ("2 actors", 2)):
        out = work / f"recs_{actors}.jsonl"
        out.unlink(missing_ok=True)
        if actors == 0:
            torch.set_num_threads(1)  # one CPU, as one actor has
        t = time.time()
        run_recommend(RecommendConfig(**base, out=out, actors=actors))
        results[name] = len(todo) / (time.time() - t)
        outputs[name] = out.read_text()
    print(f"recommend: {len(todo)} Beauty test histories, {len(ids)} item IDs, model {args.model_size}, 20 beams, "
          f"k 10, chunks of {args.chunk}, CPU")
    for name, v in results.items():
        print(f"  {name:24s} {v:8.1f} users/s")
    print(f"  2 actors / 1 actor       {results['2 actors'] / results['1 actor']:8.2f}x")
    print(f"  same lines in every setting: {len(set(outputs.values())) == 1}")


if __name__ == "__main__":
    main()
