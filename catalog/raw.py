"""The raw public formats users download: Amazon 2014, Amazon 2018, and the Yelp academic dataset.

Each reader returns a :class:`RawDataset` with sequences in time order after the k-core filter. Amazon 2014
metadata lines are Python dict literals, parsed with ``ast.literal_eval`` (safe), never ``eval``.
"""
from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

from catalog.lines import iter_lines, iter_records
from catalog.sequences import Interaction, kcore, to_sequences
from catalog.sources import RawDataset
from infra.errors import DataError, Problems

# Source field -> our field. Everything else (images, related items, ids) is not item text.
AMAZON_FIELDS = {
    "title": "title", "brand": "brand", "categories": "categories", "category": "categories",
    "main_cat": "main_category", "price": "price", "salesRank": "sales_rank",
    "description": "description", "feature": "features",
}
YELP_FIELDS = {"name": "title", "categories": "categories", "city": "city", "state": "state"}


def _first(folder: Path, patterns: list[str], what: str) -> Path:
    for pattern in patterns:
        found = sorted(p for p in folder.glob(pattern) if p.is_file())
        if found:
            return found[0]
    raise DataError(folder, None, f"no {what} file (looked for {', '.join(patterns)})")


def _map_fields(record: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for src, dst in mapping.items():
        value = record.get(src)
        if value not in (None, "", [], {}):
            out.setdefault(dst, value)
    return out


def _read_meta(path: Path, id_field: str, mapping: dict[str, str], problems: Problems) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    for number, record in iter_records(path, problems):
        item_id = record.get(id_field)
        if not item_id:
            problems.report("missing_item_id", path, number, f"record has no '{id_field}'")
            continue
        if item_id in items:
            problems.report("duplicate_item", path, number,
                            f"duplicate item id {item_id!r} (first on line {first_line[item_id]})")
            continue
        first_line[item_id] = number
        items[item_id] = _map_fields(record, mapping)
    return items


def _review(path: Path, number: int, record: dict, user_key: str, item_key: str, time_of, problems: Problems):
    try:
        return Interaction(str(record[user_key]), str(record[item_key]), float(time_of(record)), number)
    except (KeyError, TypeError, ValueError) as e:
        problems.report("malformed_line", path, number, f"review lacks a usable {e}")
        return None


def _amazon_reviews(path: Path, problems: Problems) -> list[Interaction]:
    out = []
    if path.suffix == ".csv" or path.name.endswith(".csv.gz"):
        for number, line in iter_lines(path, problems):  # ratings CSV: user,item,rating,timestamp
            row = next(csv.reader([line]))
            if len(row) < 4:
                problems.report("malformed_line", path, number, f"expected user,item,rating,timestamp; got {line!r}")
                continue
            x = _review(path, number, {"u": row[0], "i": row[1], "t": row[3]}, "u", "i", lambda r: r["t"], problems)
            if x:
                out.append(x)
        return out
    for number, record in iter_records(path, problems):
        x = _review(path, number, record, "reviewerID", "asin", lambda r: r["unixReviewTime"], problems)
        if x:
            out.append(x)
    return out


def read_amazon(folder: Path, problems: Problems, k: int = 5) -> RawDataset:
    """Amazon 2014 (``meta_X.json.gz`` + ``reviews_X_5.json.gz`` or ``ratings_X.csv``) or 2018 (JSON lines)."""
    meta = _first(folder, ["meta_*.json.gz", "meta_*.json"], "Amazon metadata (meta_<Category>.json.gz)")
    reviews = _first(folder, ["reviews_*.json.gz", "reviews_*.json", "ratings_*.csv", "*_5.json.gz", "*.csv",
                              "[!m]*.json.gz"], "Amazon reviews or ratings")
    items = _read_meta(meta, "asin", AMAZON_FIELDS, problems)
    sequences = to_sequences(kcore(_amazon_reviews(reviews, problems), k))
    return RawDataset(items=items, sequences=sequences, items_path=meta, sequences_path=reviews)


def _yelp_time(record: dict) -> float:
    return datetime.fromisoformat(str(record["date"])).timestamp()


def read_yelp(folder: Path, problems: Problems, k: int = 5) -> RawDataset:
    """Yelp academic dataset: ``business.json`` (items) + ``review.json`` (interactions), JSON lines."""
    business = _first(folder, ["*business.json", "*business.json.gz"], "Yelp business.json")
    review = _first(folder, ["*review.json", "*review.json.gz"], "Yelp review.json")
    items = _read_meta(business, "business_id", YELP_FIELDS, problems)
    for fields in items.values():  # "Chinese, Restaurants" -> a list
        if isinstance(fields.get("categories"), str):
            fields["categories"] = [c.strip() for c in fields["categories"].split(",") if c.strip()]
    interactions = []
    for number, record in iter_records(review, problems):
        x = _review(review, number, record, "user_id", "business_id", _yelp_time, problems)
        if x:
            interactions.append(x)
    return RawDataset(items=items, sequences=to_sequences(kcore(interactions, k)),
                      items_path=business, sequences_path=review)


def detect_format(folder: Path) -> str:
    """``shared``, ``amazon`` or ``yelp``, from the files present."""
    if not folder.is_dir():
        raise DataError(folder, None, "dataset folder not found")
    if (folder / "user_sequence.txt").exists():
        return "shared"
    if any(folder.glob("*business.json*")):
        return "yelp"
    if any(folder.glob("meta_*.json*")):
        return "amazon"
    raise DataError(folder, None, "unknown dataset layout: expected user_sequence.txt + items.jsonl.gz, "
                    "meta_<Cat>.json.gz + reviews (Amazon), or business.json + review.json (Yelp)")
