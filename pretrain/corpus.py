"""``idgenrec corpus``: several datasets merged into one multi-domain catalog for foundation pretraining.

Item and user ids are qualified by domain (``Beauty:B00123``), so equal raw ids in two domains never collide; large
domains are downsampled to ``max_users_per_domain`` users with the seed (the paper caps them at 30k), keeping the
items those users touch. Which datasets are pretraining and which held out is checked: a held-out dataset that also
appears in pretraining, shares more than ``max_shared_item_fraction`` of its item ids with it (a few cross-listed
products are normal: Toys shares 1 of 11,924 ASINs with Beauty + Sports; they are counted in the stats), or is a
known overlap (Scientific and Office_Industrial come from
the same Amazon 2018 category) is an error.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from catalog.errors import Problems
from catalog.prepare import PrepareConfig, build_catalog
from catalog.store import Catalog, write_catalog

KNOWN_OVERLAPS = [frozenset({"Scientific", "Office_Industrial"})]


@dataclass
class CorpusConfig:
    data: list[Path] = field(default_factory=list)
    out: Path | None = None
    heldout: list[Path] = field(default_factory=list)
    max_users_per_domain: int = 30000
    max_shared_item_fraction: float = 0.01
    seed: int = 0

    def check(self) -> None:
        if self.max_users_per_domain < 1:
            raise ValueError("max_users_per_domain must be >= 1")


def domain_name(path: Path) -> str:
    return Path(path).resolve().name


def check_heldout(pretrain: list[Path], heldout: list[Path], catalogs: dict[str, Catalog] | None = None,
                  max_shared_fraction: float = 0.01) -> dict[str, int]:
    """Raise when a held-out dataset is, overlaps, or shares too many items with a pretraining one; return the
    number of shared item ids per held-out dataset."""
    pre = {domain_name(p) for p in pretrain}
    for h in heldout:
        name = domain_name(h)
        if name in pre:
            raise ValueError(f"{name} is both pretraining and held out: it would not be unseen")
        for pair in KNOWN_OVERLAPS:
            if name in pair and pair - {name} <= pre:
                raise ValueError(f"{name} overlaps {', '.join(pair - {name})} (same source category): "
                                 "it is not unseen when the other is pretrained on")
    shared_counts: dict[str, int] = {}
    if catalogs:
        pre_items = {i for n, c in catalogs.items() if n in pre for i in c.item_ids}
        for h in heldout:
            c = catalogs.get(domain_name(h))
            shared = pre_items & set(c.item_ids) if c else set()
            shared_counts[domain_name(h)] = len(shared)
            if c and len(shared) > max_shared_fraction * len(c.item_ids):
                raise ValueError(f"{domain_name(h)} shares {len(shared)} of its {len(c.item_ids)} item ids with the "
                                 f"pretraining data (more than {max_shared_fraction:.0%}), e.g. {sorted(shared)[:3]}")
    return shared_counts


def merge(catalogs: dict[str, Catalog], max_users: int, seed: int) -> Catalog:
    """One catalog: per domain a seeded sample of at most ``max_users`` users and the items they touch."""
    rng = random.Random(seed)
    merged = Catalog([], [], [], [], [], [], [], {})
    per_domain = {}
    for name in sorted(catalogs):
        c = catalogs[name]
        keep = sorted(rng.sample(range(len(c.users)), min(max_users, len(c.users))))
        used = {i for u in keep for i in c.sequences[u]}
        rows = [r for r, i in enumerate(c.item_ids) if i in used]
        merged.item_ids += [f"{name}:{c.item_ids[r]}" for r in rows]
        merged.domains += [name] * len(rows)
        merged.fields += [c.fields[r] for r in rows]
        merged.texts += [c.texts[r] for r in rows]
        merged.users += [f"{name}:{c.users[u]}" for u in keep]
        merged.user_domains += [name] * len(keep)
        merged.sequences += [[f"{name}:{i}" for i in c.sequences[u]] for u in keep]
        per_domain[name] = {"users": len(keep), "users_before_cap": len(c.users), "items": len(rows),
                            "interactions": sum(len(c.sequences[u]) for u in keep)}
    merged.stats = {"domain": "corpus", "domains": per_domain, "users": len(merged.users),
                    "items": len(merged.item_ids), "interactions": merged.num_interactions, "seed": seed,
                    "max_users_per_domain": max_users}
    return merged


def build_corpus(cfg: CorpusConfig) -> Catalog:
    if not cfg.data or cfg.out is None:
        raise ValueError("corpus needs data and out")
    names = [domain_name(d) for d in cfg.data]
    if len(set(names)) != len(names):
        raise ValueError(f"two datasets have the same folder name: {names}")
    check_heldout(cfg.data, cfg.heldout)
    catalogs = {domain_name(d): build_catalog(PrepareConfig(data=d, domain=domain_name(d)), Problems())
                for d in list(cfg.data) + list(cfg.heldout)}
    shared = check_heldout(cfg.data, cfg.heldout, catalogs, cfg.max_shared_item_fraction)
    merged = merge({n: catalogs[n] for n in names}, cfg.max_users_per_domain, cfg.seed)
    merged.stats["heldout"] = {domain_name(h): {"items_shared_with_pretraining": shared.get(domain_name(h), 0)}
                               for h in cfg.heldout}
    write_catalog(merged, cfg.out)
    return merged
