"""Published figures on our splits (leave-one-out, all items ranked), kept as cited reference data in
``eval/paper_results.json``: the paper's Tables 4 (standard) and 7 (zero-shot) and other models' published figures.
Reports and benchmarks show them beside ours, labelled, never as a method we ran."""
from __future__ import annotations

import json
from pathlib import Path

PAPER = Path(__file__).with_name("paper_results.json")
SETTINGS = ("standard", "zero-shot")


def paper_record() -> dict:
    """The whole reference file (source, note, ID-generation figures, published rows)."""
    return json.loads(PAPER.read_text())


def published(dataset: str, setting: str | None = None, users: int | None = None) -> dict[str, dict[str, float]]:
    """Label -> the four test metrics of every published row on ``dataset`` (in ``setting``, one of ``SETTINGS``;
    None: all), in the file's order. With ``users``: only when that is the published split's whole user count (a
    slice or sample of the dataset is not what the figures were measured on)."""
    if setting is not None and setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}: one of {SETTINGS}")
    record = paper_record()
    if users is not None and record["datasets"].get(dataset, {}).get("users") != users:
        return {}
    return {row["label"]: dict(row["figures"][dataset]) for row in record["published"]
            if dataset in row["figures"] and setting in (None, row["setting"])}
