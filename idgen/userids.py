"""User IDs: generated like item IDs, from the IDs of the items in the user's history, never the target.

The published code built a user's ID from all of the user's items, test target included: a leak. Here a user ID
belongs to a (user, target position) pair, made only from the items before that position; the same batched
Algorithm 1 job generates them, unique among user IDs (not against item IDs).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

from catalog.split import HISTORY_SEPARATOR, MAX_HISTORY, target_positions


class UserKey(NamedTuple):
    user: int       # row in the catalog's sequences
    position: int   # index of the target the ID is used to predict


def user_id_sources(sequences: Sequence[Sequence[str]], item_ids: dict[str, str], max_history: int = MAX_HISTORY
                    ) -> tuple[list[UserKey], list[str]]:
    """For every target position of every split: the key and the text (history item IDs, oldest first)."""
    keys, texts = [], []
    for user, seq in enumerate(sequences):
        positions = [p for split in ("train", "valid", "test") for p in target_positions(len(seq), split)]
        for pos in positions:
            history = seq[max(0, pos - max_history):pos]
            keys.append(UserKey(user, pos))
            texts.append(HISTORY_SEPARATOR.join(item_ids[i] for i in history))
    return keys, texts
