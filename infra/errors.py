"""Bad input: one clear error naming file and line, or (when the user allows it) a counted skip."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


class DataError(ValueError):
    """Input data that cannot be used; the message names the file and, where known, the line."""

    def __init__(self, path: Path | str, line: int | None, message: str):
        self.path, self.line, self.reason = str(path), line, message
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")


@dataclass
class Problems:
    """Raises on the first problem, or with ``skip_bad`` counts it (by kind) and lets the caller skip it."""

    skip_bad: bool = False
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def report(self, kind: str, path: Path | str, line: int | None, message: str) -> None:
        """Record a problem of ``kind``; raise :class:`DataError` unless skipping is allowed."""
        err = DataError(path, line, message)
        if not self.skip_bad:
            raise err
        self.counts[kind] += 1
        self.examples.setdefault(kind, str(err))

    def summary(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def require_file(path: Path | str) -> Path:
    """``path`` as a Path when it is a readable file; else one clear error (not found, or a directory)."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, None, "is a directory; expected a file")
    if not path.is_file():
        raise DataError(path, None, "file not found")
    return path


def require_writable_file(path: Path | str) -> Path:
    """Check an output file's path before any work is done: not a directory, and its folder can be made."""
    path = Path(path)
    if path.is_dir():
        raise DataError(path, None, "is a directory; give a file path for the output")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise DataError(path, None, f"cannot be written: {parent} is not a folder")
    return path
