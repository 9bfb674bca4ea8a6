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


def published(dataset: str, setting: str | None = None) -> dict[str, dict[str, float]]:
    """Label -> the four test metrics of every published row on ``dataset`` (in ``setting``, one of ``SETTINGS``;
    None: all), in the file's order."""
    if setting is not None and setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}: one of {SETTINGS}")
    return {row["label"]: dict(row["figures"][dataset]) for row in paper_record()["published"]
            if dataset in row["figures"] and setting in (None, row["setting"])}
