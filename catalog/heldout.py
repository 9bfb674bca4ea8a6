"""Held-out datasets stay unseen: the checks shared by every job that reads catalogs before a zero-shot evaluation.

A dataset is named by its domain (a dataset folder's name, or a catalog's ``domain`` in stats.json). Pretraining
data "touches" a held-out dataset when it is the same domain, a known overlap (Scientific and Office_Industrial come
from the same Amazon 2018 category), or shares too many item ids. The corpus merge, the tokenizer and the generator
warm start all refuse such data, and models record the domains they have seen (``domains_seen``) so that
``idgenrec zeroshot`` can refuse to call an evaluation zero-shot when it is not.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

from catalog.store import Catalog

KNOWN_OVERLAPS = [frozenset({"Scientific", "Office_Industrial"})]
PROVENANCE_FILE = "idgenrec.json"  # in tokenizer and model directories: {"domains_seen": [...], ...}


def dataset_name(path: Path | str) -> str:
    """The domain of a catalog directory (its stats.json), else the folder's name (a dataset folder)."""
    path = Path(path)
    stats = path / "stats.json"
    if stats.is_file():
        domain = json.loads(stats.read_text()).get("domain")
        if domain and domain != "corpus":
            return domain
    return path.resolve().name


def catalog_domains(catalog: Catalog) -> set[str]:
    """The domains a catalog holds: one, or each domain of a multi-domain corpus."""
    if catalog.stats.get("domains"):
        return set(catalog.stats["domains"])
    return set(catalog.user_domains) | set(catalog.domains)


def declared_heldout(catalogs: Iterable[Catalog]) -> set[str]:
    """Domains a corpus was built to keep unseen (recorded by ``idgenrec corpus``)."""
    return {name for c in catalogs for name in c.stats.get("heldout", {})}


def domains_seen(directory: Path | str | None) -> set[str]:
    """The domains a tokenizer or model directory was trained on, as recorded in its ``idgenrec.json`` (empty when
    not recorded, e.g. a downloaded t5-small)."""
    path = Path(directory) / PROVENANCE_FILE if directory else None
    if path is None or not path.is_file():
        return set()
    return set(json.loads(path.read_text()).get("domains_seen", []))


def check_unseen(seen: Mapping[str, set[str]], heldout: Iterable[str], what: str) -> None:
    """Raise when data or a model (``seen``: source -> its domains) is or overlaps a held-out domain."""
    held = set(heldout)
    for source, domains in seen.items():
        for name in sorted(domains):
            if name in held:
                raise ValueError(f"{what}: {source} includes held-out dataset {name}, so an evaluation on {name} "
                                 "would not be zero-shot")
            for pair in KNOWN_OVERLAPS:
                if name in pair and (pair - {name}) & held:
                    other = ", ".join(sorted((pair - {name}) & held))
                    raise ValueError(f"{what}: {source} includes {name}, which overlaps held-out dataset {other} "
                                     "(same source category)")


def check_heldout(pretrain: list[Path], heldout: list[Path], catalogs: dict[str, Catalog] | None = None,
                  max_shared_fraction: float = 0.01) -> dict[str, int]:
    """For the corpus: raise when a held-out dataset is, overlaps, or shares too many items with a pretraining one;
    return the number of shared item ids per held-out dataset."""
    pre = {dataset_name(p) for p in pretrain}
    held = [dataset_name(h) for h in heldout]
    check_unseen({"the pretraining data": pre}, held, "pretraining")
    shared_counts: dict[str, int] = {}
    if catalogs:
        pre_items = {i for n, c in catalogs.items() if n in pre for i in c.item_ids}
        for name in held:
            c = catalogs.get(name)
            shared = pre_items & set(c.item_ids) if c else set()
            shared_counts[name] = len(shared)
            if c and len(shared) > max_shared_fraction * len(c.item_ids):
                raise ValueError(f"{name} shares {len(shared)} of its {len(c.item_ids)} item ids with the pretraining "
                                 f"data (more than {max_shared_fraction:.0%}), e.g. {sorted(shared)[:3]}")
    return shared_counts
