"""Run folders: where each job writes its results, and how they are found again. The one module that knows the
file names, so the writers (evaluation, SASRec, the trainer) and the readers (report, recipes, benchmarks) agree.

- an evaluation folder: ``metrics_<split>.json`` (HR/NDCG, users, popularity, ...) and ``topk_<split>.parquet``;
- a SASRec folder: ``sasrec.json`` (valid and test metrics, best epoch, epochs run, seconds, config);
- a training run (``pretrain.train``): ``checkpoints/``, one export per epoch ``epoch<NNN>/``, ``best/`` (the epoch
  chosen on validation), ``metrics.jsonl`` (one record per logged optimizer step), ``summary.json``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from infra.atomic import atomic_path, write_json

SASREC_FILE = "sasrec.json"


def metrics_path(folder: Path | str, split: str) -> Path:
    return Path(folder) / f"metrics_{split}.json"


def write_eval(folder: Path | str, split: str, metrics: dict, topk: dict[str, list] | None = None) -> None:
    """An evaluation's metrics (and per-user ranked lists), atomically."""
    write_json(metrics_path(folder, split), metrics)
    if topk is not None:
        with atomic_path(Path(folder) / f"topk_{split}.parquet") as tmp:
            pq.write_table(pa.table(topk), tmp)


def read_eval(folder: Path | str, split: str) -> dict | None:
    """The metrics an evaluation wrote into ``folder``, or None when it has not finished there."""
    path = metrics_path(folder, split)
    return json.loads(path.read_text()) if path.is_file() else None


def read_topk(folder: Path | str, split: str) -> dict[str, list]:
    return pq.read_table(Path(folder) / f"topk_{split}.parquet").to_pydict()


def write_sasrec(folder: Path | str, result: dict) -> None:
    write_json(Path(folder) / SASREC_FILE, result)


def read_sasrec(folder: Path | str) -> dict | None:
    path = Path(folder) / SASREC_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def find(root: Path | str, what: str) -> Iterator[tuple[Path, dict | list]]:
    """(folder, content) of every result of a kind under ``root``: ``test`` (evaluations' test metrics),
    ``sasrec`` (SASRec results), ``training_log`` (the records of trainer runs' ``metrics.jsonl``)."""
    name = {"test": "metrics_test.json", "sasrec": SASREC_FILE, "training_log": TrainingRun.METRICS}[what]
    for path in sorted(Path(root).rglob(name)):
        if what == "training_log":
            yield path.parent, TrainingRun(path.parent).records()
        else:
            yield path.parent, json.loads(path.read_text())


class TrainingRun:
    """The folder of one trainer run."""

    SUMMARY, METRICS = "summary.json", "metrics.jsonl"

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best(self) -> Path:
        return self.path / "best"

    def export(self, epoch: int) -> Path:
        return self.path / f"epoch{epoch:03d}"

    def done(self) -> bool:
        return (self.path / self.SUMMARY).is_file()

    def summary(self) -> dict:
        return json.loads((self.path / self.SUMMARY).read_text())

    def write_summary(self, summary: dict) -> None:
        write_json(self.path / self.SUMMARY, summary)

    def log(self, record: dict) -> None:
        with open(self.path / self.METRICS, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        path = self.path / self.METRICS
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []

    @staticmethod
    def selected_valid(summary: dict) -> dict | None:
        """The validation figures of the epoch a run selected (None when it selected none): the one lookup of
        them, for the trainer's final test and the recipes' results."""
        best = (summary.get("best") or {}).get("epoch")
        return next((h.get("valid") for h in summary.get("history", []) if h["epoch"] == best), None)

    def best_epoch_note(self) -> tuple[int, int] | None:
        """(best epoch, epochs run) when the run selected on validation, else None."""
        if not self.done():
            return None
        s = self.summary()
        epochs = [h["epoch"] for h in s.get("history", [])]
        if not s.get("best") or not epochs or "NDCG@10" not in s["best"]:
            return None
        return s["best"]["epoch"], max(epochs) + 1
