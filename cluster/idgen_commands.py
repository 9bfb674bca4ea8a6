"""The ID subcommands of ``idgenrec``: idgen-warmstart and ids."""
from __future__ import annotations

import argparse
import json
import logging

from infra.config import add_config_args, config_from_args
from cluster.idjob import HELP as IDS_HELP
from cluster.idjob import IDJobConfig, run_ids
from idgen.warmstart import WarmStartConfig, warmstart

log = logging.getLogger("idgenrec")


def run_warmstart(args: argparse.Namespace) -> None:
    report = warmstart(config_from_args(WarmStartConfig, args))
    print(f"warm start: {report['items']} items, {report['steps']} steps, loss {report['first_loss']:.3f} -> "
          f"{report['last_loss']:.3f}; word overlap with the published initial IDs: "
          f"{report['overlap_with_published_initial_ids']}")
    for ex in report["examples"]:
        print(f"  {ex['text'][:70]!r:74} -> {ex['id']!r}")


def run_ids_command(args: argparse.Namespace) -> None:
    summary = run_ids(config_from_args(IDJobConfig, args))
    items = summary["items"]
    print(f"ids: {items['items']} items in {items['seconds']} s ({items['items_per_s']} items/s); "
          f"needed lambda > 1: {items['needed_higher_lambda']:.2%}; "
          f"needed a longer window: {items['needed_longer_window']:.2%}")
    if "users" in summary:
        print(f"user ids: {summary['users']['items']} (user, position) pairs in {summary['users']['seconds']} s")
    log.debug(json.dumps(summary, indent=2))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("idgen-warmstart", help="train the ID generator to write extractive tags (warm start)",
                       description="Train a T5 ID generator (fresh from a size config, or a local pretrained one) to "
                       "write an item's salient title words and leaf category, so that IDs read like words. Prints "
                       "ten examples and the word overlap with the published initial IDs where the data has them.")
    add_config_args(p, WarmStartConfig, {"catalog": "catalog directories", "tokenizer": "tokenizer directory",
                                         "out": "generator directory to write (model + tokenizer)",
                                         "model_size": "tiny, mini (the default) or small, or a YAML path; with "
                                                       "pretrained it must match the checkpoint's architecture",
                                         "pretrained": "local T5 directory to start from instead",
                                         "heldout": "datasets or catalogs kept for zero-shot evaluation: refused",
                                         "device": "auto (a GPU when present), cpu or cuda"})
    p.set_defaults(func=run_warmstart)
    p = sub.add_parser("ids", help="unique textual IDs for every item (Algorithm 1) with Ray actors",
                       description="Generate a unique textual ID per item with diverse beam search and the paper's "
                       "Algorithm 1, sharded over Ray actors with one central registry. Works under `ray job submit` "
                       "(or --address); otherwise starts a local Ray instance. Resumable: rerun the same command.")
    add_config_args(p, IDJobConfig, IDS_HELP)
    p.set_defaults(func=run_ids_command)
