"""Reading training shards with WebDataset, split by node (rank) and by loader worker: each sample once per epoch.

Ranks can hold different numbers of samples (shards are whole units); every rank runs the same number of
micro-steps (collectives need it), and a rank out of samples feeds an empty batch whose loss counts zero.
Micro-batches are grouped by length (less padding) and tokenized ahead in a background thread.
"""
from __future__ import annotations

import itertools
import math
import queue
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence, TypeVar

import torch

T = TypeVar("T")

from pretrain.shards import rank_sample_counts, rank_samples
from recommender.prompts import epoch_template, render_prompt


def micro_steps_per_epoch(shards_dir: Path, world: int, micro_batch: int, grad_accum: int) -> int:
    """Micro-steps every rank runs per epoch: enough for the fullest rank, rounded up to whole optimizer steps."""
    most = max(rank_sample_counts(shards_dir, world))
    return math.ceil(math.ceil(most / micro_batch) / grad_accum) * grad_accum


def rank_batches(shards_dir: Path, micro_batch: int, workers: int = 0) -> Iterator[list[dict]]:
    """This rank's samples in shard order, in lists of ``micro_batch`` (the last may be shorter)."""
    batch: list[dict] = []
    for sample in rank_samples(shards_dir, workers):
        batch.append(sample)
        if len(batch) == micro_batch:
            yield batch
            batch = []
    if batch:
        yield batch


def length_grouped(batches: Iterable[list[dict]], micro_batch: int, window: int, seed: int) -> Iterator[list[dict]]:
    """Re-form batches ``window`` at a time: their samples sorted by prompt length, cut into batches again, those
    batches yielded in a seeded random order. Same samples, same number of batches, far less padding."""
    rng = random.Random(seed)
    it = iter(batches)
    while True:
        pool = [s for b in itertools.islice(it, window) for s in b]
        if not pool:
            return
        pool.sort(key=lambda s: len(s["src"]))
        group = [pool[i:i + micro_batch] for i in range(0, len(pool), micro_batch)]
        rng.shuffle(group)
        yield from group


@dataclass
class Batch:
    keys: list[str]
    tensors: dict[str, torch.Tensor]  # input_ids, attention_mask, labels (pad -> -100)


@dataclass(frozen=True)
class Redraw:
    """How an epoch renders its recommendation samples again, the same on every rank and rerun (seeded by
    ``seed``, ``epoch`` and the sample's key): ``templates`` > 0 draws a template among the first ``templates``
    (0 keeps the shard's); ``history_crop`` is the share of samples whose history is cut to a random number of
    its most recent items (1 to all), an augmentation that shows the item-to-item transitions without the
    older context a long prompt lets the model memorize; ``successor_targets`` is the share of samples whose
    target is drawn again among ``successors`` of their last history item (``successor_table``)."""

    seed: int
    epoch: int
    templates: int = 0
    history_crop: float = 0.0
    successor_targets: float = 0.0
    successors: Mapping[str, Sequence[str]] | None = None

    @classmethod
    def of(cls, seed: int, epoch: int, templates: int, history_crop: float, successor_targets: float = 0.0,
           successors: Mapping[str, Sequence[str]] | None = None) -> "Redraw | None":
        """How ``epoch`` renders the samples again (None: as the shards wrote them)."""
        if not (templates or history_crop or successor_targets):
            return None
        return cls(seed, epoch, templates, history_crop, successor_targets, successors)


def successor_table(samples: Iterable[dict]) -> dict[str, list[str]]:
    """Per item ID, the targets of the recommendation samples whose history ends with it, each as often as it
    follows (in sample key order, so the table is the same on every rank and rerun): the first-order Markov
    chain of the training transitions, the only ones the table sees."""
    table: dict[str, list[tuple[str, str]]] = {}
    for s in samples:
        meta = s["meta"]
        if meta.get("task", "rec") == "rec" and meta.get("history"):
            table.setdefault(meta["history"][-1], []).append((s["key"], s["tgt"]))
    return {last: [tgt for _, tgt in sorted(pairs)] for last, pairs in table.items()}


def target(sample: dict, redraw: Redraw | None) -> str:
    """A sample's target: the shard's, or with probability ``redraw.successor_targets`` a successor of its last
    history item drawn in proportion to how often it follows (the sample's own target among them): the Markov
    chain's distribution mixed into the labels, so that the model learns what usually follows the last item
    whatever came before it (grounding samples keep theirs)."""
    meta = sample["meta"]
    if (redraw is None or redraw.successor_targets <= 0 or not redraw.successors
            or meta.get("task", "rec") != "rec" or not meta.get("history")):
        return sample["tgt"]
    rng = random.Random(f"successor:{redraw.seed}:{redraw.epoch}:{sample['key']}")
    if rng.random() >= redraw.successor_targets:
        return sample["tgt"]
    return rng.choice(redraw.successors.get(meta["history"][-1]) or [sample["tgt"]])


def cropped_history(history: list[str], crop: float, rng: random.Random) -> list[str]:
    """``history`` (oldest first), or with probability ``crop`` only its k most recent items, k uniform in
    1..len."""
    if crop <= 0 or rng.random() >= crop:
        return history
    return history[len(history) - rng.randint(1, len(history)):]


def prompt(sample: dict, redraw: Redraw | None) -> str:
    """A sample's prompt: as written in the shard, or a recommendation sample rendered again as ``redraw`` says
    (grounding samples keep theirs; a redraw of targets only leaves the prompt as written)."""
    meta = sample["meta"]
    if (redraw is None or not (redraw.templates or redraw.history_crop) or meta.get("task", "rec") != "rec"
            or "history" not in meta):
        return sample["src"]
    template = (epoch_template(redraw.seed, redraw.epoch, sample["key"], redraw.templates) if redraw.templates
                else meta["template"])
    rng = random.Random(f"crop:{redraw.seed}:{redraw.epoch}:{sample['key']}")
    return render_prompt(cropped_history(meta["history"], redraw.history_crop, rng), meta.get("user_id"), template)


def tokenized_batches(shards_dir: Path, micro_batch: int, tokenizer, max_source_tokens: int, max_target_tokens: int,
                      group_window: int, seed: int, workers: int = 0,
                      redraw: Redraw | None = None) -> Iterator[Batch]:
    """This rank's micro-batches, prompts optionally rendered again (``redraw``; before grouping, so groups see
    the lengths trained on), length-grouped (``group_window`` > 1), tokenized in a background thread."""
    from seq2seq.batching import seq2seq_batch

    raw: Iterable[list[dict]] = rank_batches(shards_dir, micro_batch, workers)
    if redraw is not None:
        raw = ([s | {"src": prompt(s, redraw), "tgt": target(s, redraw)} for s in b] for b in raw)
    if group_window > 1:
        raw = length_grouped(raw, micro_batch, group_window, seed)
    pin = torch.cuda.is_available()  # pinned host memory: the copy to the GPU can overlap compute

    def make(b: list[dict]) -> Batch:
        t = seq2seq_batch(tokenizer, [s["src"] for s in b], [s["tgt"] for s in b], max_source_tokens,
                          max_target_tokens)
        return Batch([s["key"] for s in b], {k: v.pin_memory() if pin else v for k, v in t.items()})

    return prefetch(make(b) for b in raw)


def empty_batch(tokenizer, max_source_tokens: int, max_target_tokens: int) -> Batch:
    """What a rank out of samples feeds (its loss is multiplied by zero)."""
    from seq2seq.batching import seq2seq_batch

    return Batch([], seq2seq_batch(tokenizer, [""], [""], max_source_tokens, max_target_tokens))


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Produce ``items`` in a daemon thread, up to ``depth`` ahead (tokenizing overlaps training). Errors are
    raised in the consumer; a consumer that stops early lets the thread end at its next put."""
    q: queue.Queue = queue.Queue(depth)
    done, stop = object(), threading.Event()

    def work() -> None:
        try:
            for x in items:
                while not stop.is_set():
                    try:
                        q.put((x, None), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((done, None))
        except BaseException as e:  # handed to the consumer
            q.put((done, e))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()

    def consume() -> Iterator[T]:
        try:
            while True:
                x, err = q.get()
                if x is done:
                    if err is not None:
                        raise err
                    return
                yield x
        finally:  # closed or exhausted: the worker ends at its next put; wait for it, so that no thread is inside
            stop.set()  # the tokenizer's native code when the interpreter exits (that aborted a finished run)
            thread.join(timeout=30)

    return consume()
