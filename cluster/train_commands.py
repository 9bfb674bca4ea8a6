"""The training subcommands of ``idgenrec``: shards and alternate. (The recommender trainer itself runs under the
deepspeed launcher: ``deepspeed --num_accelerators N --module pretrain.train --config ...``.)"""
from __future__ import annotations

import argparse

from infra.config import add_config_args, config_from_args
from cluster.alternate import HELP as ALT_HELP
from cluster.alternate import AlternateConfig, run_alternate
from pretrain.shards import ShardsConfig, write_shards


def run_shards(args: argparse.Namespace) -> None:
    m = write_shards(config_from_args(ShardsConfig, args))
    print(f"shards: {m['samples']} samples in {len(m['shards'])} shards; per domain {m['per_domain']}; "
          f"config {m['config_hash']}")


def run_alternate_command(args: argparse.Namespace) -> None:
    result = run_alternate(config_from_args(AlternateConfig, args))

    def line(m: dict) -> str:
        return "  ".join(f"{k} {m[k]:.4f}" for k in ("HR@5", "HR@10", "NDCG@5", "NDCG@10"))

    for r in result["rounds"]:
        print(f"round {r['round']}: valid {line(r['valid'])} | test {line(r['test'])}")
    f = result["final"]
    print(f"{result['mode']}: round {f['round']} selected on validation; test {line(f['test'])}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shards", help="write training samples as WebDataset tar shards",
                       description="Template every training sample (prompt with history item IDs -> target ID) of "
                       "one or more catalogs, shuffle with the seed, and write WebDataset tar shards with a "
                       "manifest.json (counts per domain and shard, config hash), atomically.")
    add_config_args(p, ShardsConfig, {"catalog": "catalog directories", "ids": "ID directories, one per catalog",
                                      "out": "shard folder to write", "user_ids": "put user IDs in the prompts",
                                      "split": "train (default) or valid/test"})
    p.set_defaults(func=run_shards)
    p = sub.add_parser("alternate", help="alternate training of ID generator and recommender (paper section 2.5)",
                       description="Rounds of: generator phase through the frozen recommender (soft ID embeddings), "
                       "IDs regenerated with Algorithm 1 (Ray), recommender phase with DeepSpeed on fresh shards. "
                       "Reruns continue where they stopped.")
    add_config_args(p, AlternateConfig, ALT_HELP)
    p.set_defaults(func=run_alternate_command)
