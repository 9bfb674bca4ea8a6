"""Content fingerprints for resumable steps.

A step's outputs are reused only when they were made from inputs of the same **content** and the same settings: a
model retrained in place or a catalog prepared again from other data changes the fingerprint, and the step runs
again; a moved or renamed folder with the same files does not. Each step keeps the fingerprints of its inputs in a
stamp file (``.inputs.json``) beside its outputs, written after the step has finished.

Names that start with a dot (stamps, the temporary files of ``infra.atomic``) never count as content.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from infra.atomic import write_json

log = logging.getLogger("idgenrec.fingerprint")
STAMP = ".inputs.json"
_CHUNK = 1 << 20
_cache: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path | str) -> str:
    """SHA-256 of a file's bytes (cached per path, size and modification time within this process)."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _cache:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(_CHUNK), b""):
                h.update(block)
        _cache[key] = h.hexdigest()
    return _cache[key]


def _content_files(folder: Path, skip: frozenset[str]) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in skip)
        for name in sorted(files):
            if not name.startswith(".") and name not in skip:
                yield Path(root) / name


def content_digest(path: Path | str | None, skip: Iterable[str] = ()) -> str:
    """A short fingerprint of a file or a folder's files (relative names and bytes); ``skip``: names (files or
    folders, at any depth) that are state rather than content (e.g. an ID job's ``work``). A missing path and None
    have fingerprints of their own."""
    if path is None:
        return "none"
    path = Path(path)
    if path.is_file():
        return file_digest(path)[:16]
    if not path.is_dir():
        return "missing"
    h = hashlib.sha256()
    for f in _content_files(path, frozenset(skip)):
        h.update(f"{f.relative_to(path).as_posix()}\t{file_digest(f)}\n".encode())
    return h.hexdigest()[:16]


def settings_digest(settings: Any) -> str:
    """A short fingerprint of JSON-able settings (paths and other objects by their text)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_stamp(folder: Path | str) -> dict | None:
    path = Path(folder) / STAMP
    return json.loads(path.read_text()) if path.is_file() else None


def write_stamp(folder: Path | str, inputs: Mapping[str, str]) -> None:
    """Record that the outputs in ``folder`` were made from ``inputs`` (name -> fingerprint)."""
    write_json(Path(folder) / STAMP, dict(inputs))


def changed_inputs(folder: Path | str, inputs: Mapping[str, str]) -> list[str]:
    """Names of the inputs whose fingerprint differs from the stamp in ``folder`` (all of them without a stamp)."""
    stamp = read_stamp(folder) or {}
    return sorted(k for k in set(inputs) | set(stamp) if stamp.get(k) != inputs.get(k))


def restamp_legacy(folder: Path | str, inputs: Mapping[str, str], legacy: Mapping[str, str]) -> None:
    """Rewrite a stamp whose fingerprints were taken by an older rule: where the stamp holds ``legacy[name]`` (the same
    input fingerprinted the old way), it gets ``inputs[name]``. The content it names is the same, so outputs made from
    it, finished or half-done, are kept rather than redone."""
    stamp = read_stamp(folder)
    old = [k for k in legacy if stamp and k in inputs and stamp.get(k) == legacy[k] != inputs[k]]
    if old:
        write_stamp(folder, stamp | {k: inputs[k] for k in old})
        log.info("%s: stamp of %s taken by an older rule, the same content: restamped", folder, ", ".join(old))


def step_done(name: str, folder: Path | str, inputs: Mapping[str, str], complete: bool,
              legacy: Mapping[str, str] | None = None) -> bool:
    """Whether a step may be skipped: its outputs are ``complete`` and were made from these very inputs. Logs the
    decision, naming the inputs that changed when finished outputs are redone. ``legacy``: fingerprints of the
    same inputs by an older rule, which a stamp may still hold (:func:`restamp_legacy`)."""
    if legacy:
        restamp_legacy(folder, inputs, legacy)
    changed = changed_inputs(folder, inputs)
    if complete and not changed:
        log.info("[%s] done already with the same inputs: skipped", name)
        return True
    if complete:
        log.warning("[%s] %s was made from other inputs (changed: %s): running again", name, folder,
                    ", ".join(changed))
    else:
        log.info("[%s] running", name)
    return False


def set_aside(folder: Path | str) -> Path | None:
    """Move a folder made from other inputs out of the way, as ``<name>.stale-N`` (returned), so that nothing of it
    is resumed and nothing of it is lost (a model that took hours, say)."""
    folder = Path(folder)
    if not folder.exists():
        return None
    n = 1
    while folder.with_name(f"{folder.name}.stale-{n}").exists():
        n += 1
    kept = folder.with_name(f"{folder.name}.stale-{n}")
    folder.rename(kept)
    log.warning("%s was made from other inputs: kept as %s", folder, kept)
    return kept
