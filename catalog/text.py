"""Item metadata rendered as plain text the way the paper does: ``key: value; key: value; ...``.

The ID generator reads this text, so it must be clean (no HTML, no markup, one space between words) and bounded
(a word budget per field and for the whole text). Every field present is used by default: the generator learns
which words matter.
"""
from __future__ import annotations

import html
import re
from typing import Any, Iterable, Mapping

_COMMENT = re.compile(r"<!--.*?(-->|$)", re.S)
_SCRIPT = re.compile(r"<(script|style)\b.*?(</\1\s*>|$)", re.S | re.I)
_TAG = re.compile(r"<[^>]{0,2000}>")
_SPACE = re.compile(r"\s+")

DEFAULT_FIELD_ORDER = ("title", "categories", "brand")
# Not item text: ids, the domain (a column of its own), and the published code's initial IDs (kept in the data
# files for comparison only).
DEFAULT_EXCLUDE = ("item_id", "domain", "idgenrec_phase0_id")


def clean(text: str) -> str:
    """Strip HTML comments, scripts, styles and tags, unescape entities, collapse whitespace."""
    text = _COMMENT.sub(" ", text)
    text = _SCRIPT.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = _TAG.sub(" ", text)  # entities such as &lt;b&gt; can hide tags
    return _SPACE.sub(" ", text).strip()


def truncate_words(text: str, max_words: int) -> str:
    """At most ``max_words`` whitespace-separated words (0 or less = no limit)."""
    if max_words <= 0:
        return text
    words = text.split(" ")
    return text if len(words) <= max_words else " ".join(words[:max_words])


def _flatten(value: Any) -> Iterable[str]:
    if value is None:
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            inner = " ".join(_flatten(v))
            yield f"{k} {inner}".strip()
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _flatten(v)
    elif isinstance(value, float):
        yield f"{value:g}"
    else:
        yield str(value)


def value_text(value: Any) -> str:
    """One field's value as text: lists joined with commas (duplicates dropped), markup removed."""
    parts: list[str] = []
    for piece in _flatten(value):
        piece = clean(piece)
        if piece and piece not in parts:
            parts.append(piece)
    return ", ".join(parts)


def ordered_fields(fields: Mapping[str, Any], field_order: Iterable[str], exclude: Iterable[str]) -> list[str]:
    """Field names in render order: ``field_order`` first, then the rest in their original order."""
    excluded = set(exclude)
    first = [f for f in field_order if f in fields and f not in excluded]
    rest = [f for f in fields if f not in excluded and f not in first]
    return first + rest


def render_item(
    fields: Mapping[str, Any],
    field_order: Iterable[str] = DEFAULT_FIELD_ORDER,
    exclude: Iterable[str] = DEFAULT_EXCLUDE,
    max_field_words: int = 64,
    max_text_words: int = 256,
) -> str:
    """``key: value; key: value`` over every non-empty field, within the word budgets."""
    parts = []
    for name in ordered_fields(fields, field_order, exclude):
        text = truncate_words(value_text(fields[name]), max_field_words)
        if text:
            parts.append(f"{name.replace('_', ' ')}: {text}")
    return truncate_words("; ".join(parts), max_text_words)
