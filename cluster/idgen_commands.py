"""The ID subcommands of ``idgenrec``: idgen-warmstart and ids."""
from __future__ import annotations

import argparse
import json
import logging

from cluster.idjob import HELP as IDS_HELP
from cluster.idjob import IDJobConfig, run_ids
from idgen.warmstart import HELP as WARMSTART_HELP
from idgen.warmstart import WarmStartConfig, warmstart
from infra.config import add_job

log = logging.getLogger("idgenrec")


def run_warmstart(cfg: WarmStartConfig) -> None:
    report = warmstart(cfg)
    print(f"warm start: {report['items']} items, {report['steps']} steps, loss {report['first_loss']:.3f} -> "
          f"{report['last_loss']:.3f}; word overlap with the published initial IDs: "
          f"{report['overlap_with_published_initial_ids']}")
    for ex in report["examples"]:
        print(f"  {ex['text'][:70]!r:74} -> {ex['id']!r}")


def run_ids_command(cfg: IDJobConfig) -> None:
    summary = run_ids(cfg)
    items = summary["items"]
    print(f"ids: {items['items']} items in {items['seconds']} s ({items['items_per_s']} items/s); "
          f"needed lambda > 1: {items['needed_higher_lambda']:.2%}; "
          f"needed a longer window: {items['needed_longer_window']:.2%}")
    if "users" in summary:
        print(f"user ids: {summary['users']['items']} (user, position) pairs in {summary['users']['seconds']} s")
    log.debug(json.dumps(summary, indent=2))


def register(sub: argparse._SubParsersAction) -> None:
    add_job(sub, "idgen-warmstart", WarmStartConfig, run_warmstart,
            "train the ID generator to write extractive tags (warm start)",
            "Train a T5 ID generator (fresh from a size config, or a local pretrained one) to write an item's salient "
            "title words and leaf category, so that IDs read like words. Prints ten examples and the word overlap "
            "with the published initial IDs where the data has them.", WARMSTART_HELP)
    add_job(sub, "ids", IDJobConfig, run_ids_command, "unique textual IDs for every item (Algorithm 1) with Ray actors",
            "Generate a unique textual ID per item with diverse beam search and the paper's Algorithm 1, sharded "
            "over Ray actors with one central registry (or in this process with --actors 0). Works under `ray job "
            "submit` (or --address); otherwise starts a local Ray instance. Resumable: rerun the same command.",
            IDS_HELP)
