"""The ID table, ``item_ids.parquet`` / ``user_ids.parquet``: the one module that writes, reads and checks it.

Columns: the key (``item_id``, or ``user_id`` and ``position``), ``id`` (the textual ID), ``token_ids`` (that text
tokenized by the tokenizer of the generator that wrote it, without the end token), and how hard the ID was to find
(``attempts``, ``lambda``, ``window_lo``, ``window_hi``). The schema metadata records that tokenizer's fingerprint.

Token ids only mean something under their own tokenizer, so nothing reads the ``token_ids`` column directly: a
consumer asks :func:`item_id_tokens` for the IDs in *its* tokenizer (the recommender's, for a trie or a target) and
gets the stored tokens only when the fingerprints agree, else the ID texts tokenized afresh.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from catalog.tokenizer import tokenizer_fingerprint
from infra.atomic import atomic_path
from infra.errors import DataError
from infra.fingerprint import content_digest

log = logging.getLogger(__name__)
ITEM_TABLE, USER_TABLE = "item_ids.parquet", "user_ids.parquet"
FINGERPRINT_KEY = b"idgenrec.tokenizer_fingerprint"


@dataclass
class Escalation:
    """Per row: how Algorithm 1 found the ID (attempts, the diversity penalty and the length window it took)."""

    attempts: list[int]
    lam: list[float]
    window_lo: list[int]
    window_hi: list[int]


def write_id_table(path: Path | str, keys: dict[str, list], ids: Sequence[str], tokenizer,
                   escalation: Escalation | None = None) -> None:
    """Write an ID table atomically; ``keys`` are the key columns (``item_id``, or ``user_id`` + ``position``)."""
    check_not_blank(next(iter(keys.values())), ids, path)
    token_ids = tokenizer(list(ids), add_special_tokens=False)["input_ids"] if ids else []
    if "item_id" in keys:
        check_distinct_tokens(keys["item_id"], ids, token_ids, path)
    columns = {**keys, "id": list(ids), "token_ids": pa.array(token_ids, pa.list_(pa.int32()))}
    if escalation is not None:
        columns |= {"attempts": escalation.attempts, "lambda": escalation.lam, "window_lo": escalation.window_lo,
                    "window_hi": escalation.window_hi}
    table = pa.table(columns).replace_schema_metadata({FINGERPRINT_KEY: tokenizer_fingerprint(tokenizer).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u2581"))


def check_not_blank(keys: Sequence, ids: Sequence[str], path: Path | str) -> None:
    """Every ID must hold a visible word: a blank one (what a generator trained too briefly writes) names nothing
    and could only be told apart from another by its whitespace."""
    blank = [k for k, text in zip(keys, ids) if text is None or not text.translate(_INVISIBLE).strip()]
    if blank:
        raise DataError(path, None, f"{len(blank)} ID(s) are empty or only whitespace, e.g. for {blank[:5]}: the "
                        "generator has not learned to write IDs (train its warm start longer); no table written")


def check_distinct_tokens(items: Sequence[str], ids: Sequence[str], token_ids: Sequence[Sequence[int]],
                          path: Path | str) -> None:
    """Distinct item IDs must stay distinct as tokens (a prefix trie maps tokens to one item): texts that differ only
    in characters the tokenizer does not know would not."""
    first: dict[tuple, int] = {}
    for n, toks in enumerate(token_ids):
        m = first.setdefault(tuple(toks), n)
        if m != n:
            raise DataError(path, None, f"items {items[m]!r} and {items[n]!r} have IDs {ids[m]!r} and {ids[n]!r}, "
                            f"which the tokenizer turns into the same tokens {list(toks)}")


def read_id_table(path: Path | str) -> dict[str, list]:
    """An ID table as columns."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "not found: run `idgenrec ids` first")
    return pq.read_table(path).to_pydict()


def table_fingerprint(path: Path | str) -> str | None:
    """The fingerprint of the tokenizer the table's ``token_ids`` were made with (None for tables without one)."""
    meta = pq.read_schema(path).metadata or {}
    value = meta.get(FINGERPRINT_KEY)
    return value.decode() if value else None


def ids_hash(ids_dir: Path | str) -> str:
    """A hash of the item IDs (keys and texts, not their tokens): which IDs a model was trained with."""
    t = read_id_table(Path(ids_dir) / ITEM_TABLE)
    h = hashlib.sha256()
    for key, text in zip(t["item_id"], t["id"]):
        h.update(f"{key}\t{text}\n".encode())
    return h.hexdigest()[:16]


NOT_CONTENT = ("work", "summary.json")
"""What an ID folder holds beside its tables: the job's resume state and its record (seconds, memory, paths). A table
made again from the same inputs is the same content, so steps keyed on it (shards, the recommender) are not redone."""


def id_folder_digest(ids_dir: Path | str) -> str:
    """The content fingerprint of an ID folder: its tables, not :data:`NOT_CONTENT`."""
    return content_digest(ids_dir, skip=NOT_CONTENT)


def legacy_id_folder_digest(ids_dir: Path | str) -> str:
    """The fingerprint stamps held before :data:`NOT_CONTENT` left out ``summary.json`` (``step_done``'s legacy)."""
    return content_digest(ids_dir, skip=["work"])


def item_id_texts(ids_dir: Path | str, item_ids: Sequence[str]) -> list[str]:
    """The ID text of every catalog item, in catalog order; an item without an ID is an error."""
    path = Path(ids_dir) / ITEM_TABLE
    t = read_id_table(path)
    by_item = dict(zip(t["item_id"], t["id"]))
    missing = [i for i in item_ids if i not in by_item]
    if missing:
        raise DataError(path, None, f"{len(missing)} catalog items have no ID, e.g. {missing[:5]}")
    return [by_item[i] for i in item_ids]


def item_id_tokens(ids_dir: Path | str, item_ids: Sequence[str], tokenizer) -> tuple[list[str], list[list[int]]]:
    """ID texts and their token ids **in ``tokenizer``** (without the end token), in catalog order.

    The stored tokens are used when the table was written with the same tokenizer; otherwise (a recommender with
    its own tokenizer, e.g. a local t5-small) the texts are tokenized again, so a trie or a target built from them
    always speaks the model's vocabulary."""
    path = Path(ids_dir) / ITEM_TABLE
    texts = item_id_texts(ids_dir, item_ids)
    ours = tokenizer_fingerprint(tokenizer)
    stored = table_fingerprint(path)
    if stored == ours:
        t = read_id_table(path)
        by_item = dict(zip(t["item_id"], t["token_ids"]))
        return texts, [list(by_item[i]) for i in item_ids]
    log.info("%s: IDs were tokenized by tokenizer %s; tokenizing them again with the model's tokenizer %s",
             path, stored or "(not recorded)", ours)
    return texts, tokenizer(texts, add_special_tokens=False)["input_ids"]


def user_id_texts(ids_dir: Path | str) -> dict[tuple[str, int], str]:
    """(user, target position) -> user ID text."""
    path = Path(ids_dir) / USER_TABLE
    if not path.is_file():
        raise DataError(path, None, "not found: run `idgenrec ids --user-ids`, or leave user_ids off")
    t = read_id_table(path)
    return {(u, p): i for u, p, i in zip(t["user_id"], t["position"], t["id"])}
