"""Leave-one-out split: the last item is the test target, the second-to-last the validation target, and every
earlier position (from the second item on) a training target. History = up to ``max_history`` items just before
the target, oldest first. Users with fewer than 3 items cannot give all three splits: they are skipped and counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal, Sequence

Split = Literal["train", "valid", "test"]
MIN_ITEMS = 3
MAX_HISTORY = 10  # history items a prompt (or a user ID) is made from by default: the most recent ones
LEGACY_MAX_HISTORY = 20  # what models and shards made before the history length was recorded with them used
HISTORY_SEPARATOR = " ; "  # between the item IDs of a history, in prompts and in user-ID sources


@dataclass(frozen=True)
class Sample:
    """One prediction: ``user`` saw ``history`` (oldest first) and next chose ``target`` at ``position``."""

    user: int           # row in the catalog's sequences
    position: int       # index of the target in the user's sequence
    history: tuple      # item ids (or rows) before the target, at most max_history, oldest first
    target: object


def target_positions(length: int, split: Split) -> range:
    """Positions of the targets of ``split`` in a sequence of ``length`` items (empty if length < 3)."""
    if length < MIN_ITEMS:
        return range(0)
    if split == "test":
        return range(length - 1, length)
    if split == "valid":
        return range(length - 2, length - 1)
    if split == "train":
        return range(1, length - 2)
    raise ValueError(f"unknown split {split!r}: expected train, valid or test")


def samples(sequences: Sequence[Sequence], split: Split, max_history: int = MAX_HISTORY) -> Iterator[Sample]:
    """Every sample of ``split``, user by user, position by position (deterministic order)."""
    if max_history < 1:
        raise ValueError("max_history must be >= 1")
    for user, seq in enumerate(sequences):
        for pos in target_positions(len(seq), split):
            yield Sample(user, pos, tuple(seq[max(0, pos - max_history):pos]), seq[pos])


def skipped_users(sequences: Sequence[Sequence]) -> int:
    """Users too short for leave-one-out (fewer than 3 items)."""
    return sum(1 for s in sequences if len(s) < MIN_ITEMS)
