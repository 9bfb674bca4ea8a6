"""Prompts for sequential recommendation, in the spirit of P5 and the paper, with no dataset name in them, so a
model moves across platforms. Training picks a template at random per sample (seeded; optionally drawn again every
epoch); evaluation uses a fixed one. The history is item IDs, the most recent first, separated by " ; " so the
recommender can tell items apart: the last item, the strongest single clue to the next one (a first-order Markov
chain of successors is as good as SASRec on Office_Industrial), then always stands at the same place, right after the
template's opening words, and a prompt cut to the token limit loses the oldest items, not the newest. Grounding
prompts teach what the ID words mean: an item's text -> its ID, an ID -> its title.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

from catalog.split import HISTORY_SEPARATOR as ITEM_SEPARATOR
from catalog.split import LEGACY_MAX_HISTORY

PROMPT_FORMAT = "recent-first"  # recorded in shard manifests: a model is trained and evaluated on one history order
EVAL_TEMPLATE = 0  # the first: training on the first N templates (``templates`` of the shards) always includes it

# {user} is replaced by "user <id> " (or nothing when user IDs are off); {history} by the item IDs.
TEMPLATES = (
    "{user}has purchased items {history} ; predict the next possible item to be bought by the user .",
    "given the following purchase history of {user}: {history} ; predict next possible item for the user .",
    "here is the purchase history of {user}: {history} ; what to recommend next for the user ?",
    "{user}has interacted with items {history} ; what is the next recommendation for the user ?",
    "based on the items {user}has bought: {history} ; can you recommend the next item ?",
    "according to the history {history} of {user}, which item will be chosen next ?",
    "{user}bought {history} , the latest first ; guess the next item .",
    "the sequence of items of {user}is {history} ; recommend one item to follow .",
    "considering {history} , the items of {user}so far , predict the item that comes next .",
    "{user}liked {history} ; what would the user like next ?",
)


def render_prompt(history: Sequence[str], user_id: str | None = None, template: int = EVAL_TEMPLATE) -> str:
    """A prompt from item IDs (given oldest first, as sequences store them; written most recent first) and an
    optional user ID."""
    if not history:
        raise ValueError("empty history: a prompt needs at least one item")
    user = f"user {user_id} " if user_id else "the user "
    return TEMPLATES[template].format(user=user, history=ITEM_SEPARATOR.join(reversed(history)))


def empty_history_prompt(template: int = EVAL_TEMPLATE) -> str:
    """The prompt with no item in it: what the model would write before reading any history (the ID prior that
    ``recommender.id_prior`` divides out)."""
    return TEMPLATES[template].format(user="the user ", history="")


def pick_template(rng: random.Random, templates: int = len(TEMPLATES)) -> int:
    """A training template among the first ``templates`` (1: only the evaluation's, ``EVAL_TEMPLATE``)."""
    return rng.randrange(templates)


def epoch_template(seed: int, epoch: int, key: str, templates: int = len(TEMPLATES)) -> int:
    """The template of sample ``key`` in ``epoch``: drawn again every epoch, the same on every rank and rerun."""
    return random.Random(f"{seed}:{epoch}:{key}").randrange(templates)


GROUNDING_TASKS = ("text_to_id", "id_to_title")


def grounding_prompt(task: str, item_text: str, item_id: str, title: str, max_words: int = 32) -> tuple[str, str]:
    """(prompt, target) of a grounding task: ``text_to_id`` (the item's text, lower-cased and cut to ``max_words``
    words -> its ID) or ``id_to_title`` (the ID -> the first ``max_words`` words of its title)."""
    if task == "text_to_id":
        return f"item : {' '.join(item_text.lower().split()[:max_words])} ; what is its id ?", item_id
    if task == "id_to_title":
        return f"what is item {item_id} ?", " ".join(title.lower().split()[:max_words])
    raise ValueError(f"unknown grounding task {task!r}: one of {GROUNDING_TASKS}")


def prompt_history(model_dir: Path | str, asked: int) -> int:
    """History items per prompt: ``asked``, or with 0 as many as the model was trained with (its ``idgenrec.json``;
    for a model without the record, what the trainer used before it recorded this). Evaluation and serving both
    resolve it here, so that they make the same prompts."""
    from seq2seq.model import model_meta

    return asked or model_meta(model_dir).get("max_history", LEGACY_MAX_HISTORY)
