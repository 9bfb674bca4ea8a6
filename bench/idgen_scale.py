"""ID generation at the paper's Fusion scale: 233k items, 2 Ray actors, a tiny warm-started generator.

Our real datasets hold about 70k items together, so the 233k-item catalog is built by recombining real item text
(seeded): item i takes the title of one real item, the categories of another and the brand of a third, drawn from
all datasets in ../shared/data. Titles are reused about 3 times each, so IDs collide often: a stress test of
Algorithm 1 and the registry. Prints wall time, items/s, peak memory of each actor and of the registry, and the
fractions of items that needed lambda > 1 and a longer window (paper, on 233k items: 11.20% and 3.72%).

    python bench/idgen_scale.py [--items 233000] [--warmstart-steps 2000]
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from common import SHARED_DATA


def build_catalog(n: int, out: Path, seed: int = 0) -> None:
    from catalog.prepare import PrepareConfig, build_catalog as build
    from infra.errors import Problems
    from catalog.store import Catalog, write_catalog
    from catalog.text import render_item

    pool = []
    for folder in sorted(SHARED_DATA.iterdir()):
        if (folder / "user_sequence.txt").exists():
            cat = build(PrepareConfig(data=folder, domain=folder.name), Problems())
            pool += [f for f in cat.fields if f.get("title") or f.get("text")]
    rng = random.Random(seed)
    fields = []
    for i in range(n):
        a, b, c = rng.choice(pool), rng.choice(pool), rng.choice(pool)
        f = {"title": a.get("title") or a.get("text")}
        if b.get("categories"):
            f["categories"] = b["categories"]
        if c.get("brand"):
            f["brand"] = c["brand"]
        fields.append(f)
    ids = [f"s{i:06d}" for i in range(n)]
    users = [f"u{u}" for u in range(1000)]
    write_catalog(Catalog(item_ids=ids, domains=["Fusion233k"] * n, fields=fields,
                          texts=[render_item(f, max_text_words=64) for f in fields], users=users,
                          user_domains=["Fusion233k"] * len(users),
                          sequences=[rng.sample(ids, 5) for _ in users],
                          stats={"items": n, "built_by": f"bench/idgen_scale.py seed {seed} from {len(pool)} items"}),
                  out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=233_000)
    ap.add_argument("--warmstart-steps", type=int, default=2000)
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("runs/scale"))
    args = ap.parse_args()
    cat_dir, tok_dir, gen_dir = args.work / "catalog", args.work / "tokenizer", args.work / "generator"
    idgenrec = [sys.executable, "-m", "cluster.cli"]
    t = time.time()
    if not (cat_dir / "stats.json").exists():
        build_catalog(args.items, cat_dir)
    print(f"catalog: {args.items} items ({time.time() - t:.0f} s)", flush=True)
    if not (tok_dir / "tokenizer.json").exists():
        subprocess.run(idgenrec + ["tokenizer", "--catalog", str(cat_dir), "--out", str(tok_dir)], check=True)
    if not (gen_dir / "config.json").exists():
        subprocess.run(idgenrec + ["idgen-warmstart", "--catalog", str(cat_dir), "--tokenizer", str(tok_dir),
                                   "--out", str(gen_dir), "--model-size", "tiny", "--steps",
                                   str(args.warmstart_steps), "--lr", "1e-2", "--max-source-tokens", "32"], check=True)
    t = time.time()
    subprocess.run(idgenrec + ["ids", "--catalog", str(cat_dir), "--model", str(gen_dir), "--out",
                               str(args.work / "ids"), "--actors", str(args.actors), "--max-source-tokens", "32",
                               "--shard-size", "1024"], check=True)
    wall = time.time() - t
    s = json.loads((args.work / "ids" / "summary.json").read_text())
    print(f"\nscale run: {s['items']['items']} items, {args.actors} actors, wall {wall:.0f} s "
          f"(this invocation; the job's own total {s['wall_seconds']} s), {s['items']['items_per_s']} items/s")
    print(f"peak memory MB: actors {[round(m) for m in s['peak_memory_mb']['actors']]}, "
          f"registry {round(s['peak_memory_mb']['registry'])}")
    print(f"needed lambda > 1: {s['items']['needed_higher_lambda']:.2%}   "
          f"needed a longer window: {s['items']['needed_longer_window']:.2%}   (paper: 11.20% and 3.72%)")


if __name__ == "__main__":
    main()
