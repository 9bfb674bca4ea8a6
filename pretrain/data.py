"""Reading training shards with WebDataset, split by node (rank) and by loader worker: each sample once per epoch.

Ranks can hold different numbers of samples (shards are whole units); every rank runs the same number of
micro-steps (collectives need it), and a rank out of samples feeds an empty batch whose loss counts zero.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import webdataset as wds

from pretrain.shards import read_manifest


def shard_urls(shards_dir: Path) -> list[str]:
    return [str(Path(shards_dir) / s["name"]) for s in read_manifest(shards_dir)["shards"]]


def rank_sample_counts(shards_dir: Path, world: int) -> list[int]:
    """Samples each rank reads (ranks take shards rank, rank + world, ...: WebDataset's split_by_node)."""
    counts = [s["samples"] for s in read_manifest(shards_dir)["shards"]]
    return [sum(counts[r::world]) for r in range(world)]


def micro_steps_per_epoch(shards_dir: Path, world: int, micro_batch: int, grad_accum: int) -> int:
    """Micro-steps every rank runs per epoch: enough for the fullest rank, rounded up to whole optimizer steps."""
    most = max(rank_sample_counts(shards_dir, world))
    return math.ceil(math.ceil(most / micro_batch) / grad_accum) * grad_accum


def rank_batches(shards_dir: Path, micro_batch: int, workers: int = 0) -> Iterator[list[dict]]:
    """This rank's samples in shard order, in lists of ``micro_batch`` (the last may be shorter)."""
    import torch

    ds = (wds.WebDataset(shard_urls(shards_dir), nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker,
                         shardshuffle=False, empty_check=False)
          .decode()
          .map(lambda s: {"key": s["__key__"], "src": s["src.txt"], "tgt": s["tgt.txt"], "meta": s["meta.json"]}))
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=workers)
    batch: list[dict] = []
    for sample in loader:
        batch.append(sample)
        if len(batch) == micro_batch:
            yield batch
            batch = []
    if batch:
        yield batch
