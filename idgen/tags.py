"""Extractive tags: the warm-start targets that teach a fresh generator to write IDs in human words.

The paper starts from a T5 fine-tuned for article tag generation, which cannot be downloaded here. Instead the
generator first learns to produce, from an item's text, its salient title words (lower case, no stop words, numbers
and sizes kept, repeated words dropped) followed by its leaf category, e.g. ``chi pro hair dryer diffuser``.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

STOP_WORDS = frozenset("""a an and are as at be by for from has have in into is it its of on or that the this to
with without your you our all new pack pcs piece pieces set item items product products x""".split())
_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")


def words(text: str) -> list[str]:
    """Lower-case word tokens, apostrophes and decimal points kept inside words."""
    return [w.replace("'", "") for w in _WORD.findall(text.lower())]


def extract_tags(fields: Mapping[str, Any], text: str, max_words: int = 8) -> str:
    """Title words (or the text's first words when there is no title) + the leaf category, deduplicated."""
    title = fields.get("title") or fields.get("name") or fields.get("text") or text
    out: list[str] = []
    for w in words(str(title)):
        if w not in STOP_WORDS and w not in out and (len(w) > 1 or w.isdigit()):
            out.append(w)
    cats = fields.get("categories")
    leaf = cats[-1] if isinstance(cats, list) and cats and isinstance(cats[-1], str) else None
    leaf_words = [w for w in words(leaf or "") if w not in STOP_WORDS and w not in out]
    keep = max_words - min(len(leaf_words), 2)
    return " ".join(out[:keep] + leaf_words[:2]) if out or leaf_words else " ".join(words(text)[:max_words])


def generator_input(text: str) -> str:
    """What the ID generator reads: the item text lower-cased, since IDs are lower-case words (copying a word
    is then the same tokens in and out, which a fresh model learns far faster)."""
    return text.lower()


def word_overlap(a: str, b: str) -> float:
    """|words(a) & words(b)| / |words(b)|: how much of reference ``b`` our ``a`` covers."""
    wa, wb = set(words(a)), set(words(b))
    return len(wa & wb) / len(wb) if wb else 0.0
