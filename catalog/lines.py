"""Reading line-oriented files (plain or gzip) with file and line numbers for every error."""
from __future__ import annotations

import ast
import gzip
import json
from pathlib import Path
from typing import Any, Iterator

from infra.errors import DataError, Problems, require_file


def open_binary(path: Path):
    require_file(path)
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def iter_lines(path: Path, problems: Problems) -> Iterator[tuple[int, str]]:
    """(line number, decoded line without newline); empty and non-UTF-8 lines are problems."""
    with open_binary(path) as fh:
        try:
            for number, raw in enumerate(fh, start=1):
                raw = raw.rstrip(b"\r\n")
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    problems.report("non_utf8_line", path, number,
                                    f"not UTF-8: byte 0x{raw[e.start]:02x} at column {e.start + 1}")
                    continue
                if not line.strip():
                    problems.report("empty_line", path, number, "empty line")
                    continue
                yield number, line
        except (OSError, EOFError) as e:  # truncated or corrupt gzip
            raise DataError(path, None, f"cannot read: {e}") from e


def parse_record(line: str) -> Any:
    """A JSON object, or a Python dict literal (Amazon 2014 metadata: ``{'asin': ...}``), parsed safely (never
    ``eval``). Any other line that is not JSON raises the JSON error, which says what is wrong where."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        if not line.lstrip().startswith("{'"):
            raise ValueError(f"not valid JSON: {e}") from e
        return ast.literal_eval(line)


def iter_records(path: Path, problems: Problems) -> Iterator[tuple[int, dict]]:
    """(line number, dict) for each JSON / dict-literal line; malformed lines are problems."""
    for number, line in iter_lines(path, problems):
        try:
            record = parse_record(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
            detail = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
            problems.report("malformed_line", path, number, f"malformed record: {detail}"[:300])
            continue
        if not isinstance(record, dict):
            problems.report("malformed_line", path, number, f"expected an object, got {type(record).__name__}")
            continue
        yield number, record
