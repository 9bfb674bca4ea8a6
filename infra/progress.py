"""Progress bars that stay readable in log files (few updates when the output is not a terminal)."""
from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, **kw) -> tqdm:
    kw.setdefault("mininterval", 0.5 if sys.stderr.isatty() else 10.0)
    kw.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kw)
