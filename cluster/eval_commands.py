"""The evaluation subcommand of ``idgenrec``: eval."""
from __future__ import annotations

import argparse

from catalog.config import add_config_args, config_from_args
from cluster.zeroshot import HELP as ZS_HELP
from cluster.zeroshot import ZeroShotConfig, run_zeroshot
from eval.evaluate import HELP, EvalConfig, evaluate


def run_eval(args: argparse.Namespace) -> None:
    m = evaluate(config_from_args(EvalConfig, args))
    print(f"{m['split']}: users {m['users']}  HR@5 {m['HR@5']:.4f}  HR@10 {m['HR@10']:.4f}  "
          f"NDCG@5 {m['NDCG@5']:.4f}  NDCG@10 {m['NDCG@10']:.4f}  ({m['users_per_s']:.1f} users/s)\n"
          f"popularity: HR@10 {m['popularity']['HR@10']:.4f}  NDCG@10 {m['popularity']['NDCG@10']:.4f}")


def run_zeroshot_command(args: argparse.Namespace) -> None:
    for name, m in run_zeroshot(config_from_args(ZeroShotConfig, args)).items():
        print(f"{name}: users {m['users']}  HR@5 {m['HR@5']:.4f}  HR@10 {m['HR@10']:.4f}  NDCG@5 {m['NDCG@5']:.4f}  "
              f"NDCG@10 {m['NDCG@10']:.4f}  (popularity HR@10 {m['popularity']['HR@10']:.4f})")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="leave-one-out HR@5/10 and NDCG@5/10 over all items (trie-constrained beams)",
                       description="Evaluate a recommender on the valid or test split: one prompt per eligible user, "
                       "trie-constrained beam search over all item IDs, metrics JSON and per-user top-k Parquet in "
                       "--out, with the popularity baseline alongside.")
    add_config_args(p, EvalConfig, HELP)
    p.set_defaults(func=run_eval)
    p = sub.add_parser("zeroshot", help="zero-shot evaluation of a pretrained model on unseen datasets (Ray tasks)",
                       description="For each held-out dataset (one Ray task each): prepare, generate IDs for its "
                       "unseen items with the trained generator (Algorithm 1), evaluate the test split with no "
                       "training. Per-dataset results are cached: a rerun skips finished datasets.")
    add_config_args(p, ZeroShotConfig, ZS_HELP)
    p.set_defaults(func=run_zeroshot_command)
