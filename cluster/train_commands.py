"""The training subcommands of ``idgenrec``: shards and alternate. (The recommender trainer itself runs under the
deepspeed launcher: ``deepspeed --num_accelerators N --module pretrain.train --config ...``.)"""
from __future__ import annotations

import argparse

from cluster.alternate import HELP as ALT_HELP
from cluster.alternate import AlternateConfig, run_alternate
from cluster.standard import HELP as STANDARD_HELP
from cluster.standard import StandardConfig, run_standard
from eval.metrics import METRICS
from infra.config import add_job
from pretrain.shards import HELP as SHARDS_HELP
from pretrain.shards import ShardsConfig, write_shards


def run_shards(cfg: ShardsConfig) -> None:
    m = write_shards(cfg)
    print(f"shards: {m['samples']} samples in {len(m['shards'])} shards; per domain {m['per_domain']}; "
          f"config {m['config_hash']}")


def run_alternate_command(cfg: AlternateConfig) -> None:
    result = run_alternate(cfg)

    def line(m: dict) -> str:
        return "  ".join(f"{k} {m[k]:.4f}" for k in METRICS)

    for r in result["rounds"]:
        print(f"round {r['round']}: valid {line(r['valid'])} | test {line(r['test'])}")
    f = result["final"]
    print(f"{result['mode']}: round {f['round']} selected on validation; test {line(f['test'])}")


def run_standard_command(cfg: StandardConfig) -> None:
    r = run_standard(cfg)
    print(f"{r['dataset']}: {r['users']} users, {r['items']} items; test metrics on the same users:")
    rows = [("IDGenRec (ours)", r["ours"]["test"]), ("popularity", r["popularity"]["test"])]
    rows += [("SASRec", r["sasrec"]["test"])] if "sasrec" in r else []
    for name, m in rows:
        print(f"  {name:16s} " + "  ".join(f"{k} {m[k]:.4f}" for k in METRICS))


def register(sub: argparse._SubParsersAction) -> None:
    add_job(sub, "standard", StandardConfig, run_standard_command,
            "the standard setting on one dataset, end to end (ours, SASRec, popularity)",
            "Prepare, tokenizer, generator warm start, item IDs (Algorithm 1), shards, recommender with validation "
            "selection, then test metrics of ours, SASRec and popularity on the same users (standard.json). Every "
            "step is cached: rerun to continue.", STANDARD_HELP)
    add_job(sub, "shards", ShardsConfig, run_shards, "write training samples as WebDataset tar shards",
            "Template every training sample (prompt with history item IDs -> target ID) of one or more catalogs, "
            "shuffle with the seed, and write WebDataset tar shards with a manifest.json (counts per domain and "
            "shard, config hash), atomically.", SHARDS_HELP)
    add_job(sub, "alternate", AlternateConfig, run_alternate_command,
            "alternate training of ID generator and recommender (paper section 2.5)",
            "Rounds of: generator phase through the frozen recommender (soft ID embeddings), IDs regenerated with "
            "Algorithm 1 (Ray), recommender phase with DeepSpeed on fresh shards; modes alternate, recommender_only "
            "and generator_only (the paper's Table 5). Reruns continue where they stopped.", ALT_HELP)
