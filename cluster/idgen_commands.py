"""The ID subcommands of ``idgenrec``: idgen-warmstart, ids and add-items."""
from __future__ import annotations

import argparse
import json
import logging

from cluster.add_items import HELP as ADD_ITEMS_HELP
from cluster.add_items import AddItemsConfig
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


def run_add_items_command(cfg: AddItemsConfig) -> None:
    from cluster.add_items import run_add_items

    r = run_add_items(cfg)
    print(f"add-items: {r['added']} new item IDs, {r['already_present']} already present (unchanged)"
          + (f", {r['catalog_added']} added to the catalog" if "catalog_added" in r else "")
          + (f", skipped {r['skipped']}" if r["skipped"] else "") + f" in {r['seconds']} s")
    for item, text in r.get("examples", []):
        print(f"  {item:24} -> {text!r}")


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
    add_job(sub, "add-items", AddItemsConfig, run_add_items_command,
            "IDs for new items from their text, against an existing ID table (no retraining)",
            "Give new items (items.jsonl(.gz) layout) unique IDs by Algorithm 1 with the original ID job's rules, the "
            "registry starting from every existing ID: no old ID changes, no new ID repeats one. The table is "
            "rewritten atomically (the previous one kept as item_ids.v<N>.parquet); --catalog appends the items to "
            "the catalog too. Items already in the table are skipped (--existing error refuses them); a rerun on "
            "the same file changes nothing. recommend and eval then return the new items without retraining.",
            ADD_ITEMS_HELP)
