"""``idgenrec corpus``: several datasets merged into one multi-domain catalog for foundation pretraining.

Item and user ids are qualified by domain (``Beauty:B00123``), so equal raw ids in two domains never collide; large
domains are downsampled to ``max_users_per_domain`` users with the seed (the paper caps them at 30k), keeping the
items those users touch; users take turns across domains, so any first-N slice of them covers every domain.
Which datasets are pretraining and which held out is checked: a held-out dataset that also
appears in pretraining, shares more than ``max_shared_item_fraction`` of its item ids with it (a few cross-listed
products are normal: Toys shares 1 of 11,924 ASINs with Beauty + Sports; they are counted in the stats), or is a
known overlap (Scientific and Office_Industrial come from
the same Amazon 2018 category) is an error.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

from catalog.heldout import check_heldout, dataset_name
from catalog.prepare import PrepareConfig, build_catalog
from catalog.store import Catalog, write_catalog
from infra.errors import Problems


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


HELP = {"max_shared_item_fraction": "largest share of a held-out dataset's item ids that may also be in the "
                                    "pretraining datasets (cross-listed products); more is refused as a leak",
        "data": "pretraining dataset folders", "out": "catalog directory to write",
        "heldout": "datasets kept for zero-shot evaluation (checked, not merged)",
        "max_users_per_domain": "user cap per domain (paper: 30,000)"}


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
    interleave_users(merged)
    merged.stats = {"domain": "corpus", "domains": per_domain, "users": len(merged.users),
                    "items": len(merged.item_ids), "interactions": merged.num_interactions, "seed": seed,
                    "max_users_per_domain": max_users}
    return merged


def interleave_users(catalog: Catalog) -> None:
    """Users in turns across domains (one of each, then the next of each...), each domain's in its own order: a
    validation of the first N users (``valid_max_users``) then covers every domain, not the first one only."""
    by_domain: dict[str, list[int]] = {}
    for u, domain in enumerate(catalog.user_domains):
        by_domain.setdefault(domain, []).append(u)
    order = [u for turn in itertools.zip_longest(*by_domain.values()) for u in turn if u is not None]
    catalog.users = [catalog.users[u] for u in order]
    catalog.user_domains = [catalog.user_domains[u] for u in order]
    catalog.sequences = [catalog.sequences[u] for u in order]


def build_corpus(cfg: CorpusConfig) -> Catalog:
    if not cfg.data or cfg.out is None:
        raise ValueError("corpus needs data and out")
    names = [dataset_name(d) for d in cfg.data]
    if len(set(names)) != len(names):
        raise ValueError(f"two datasets have the same folder name: {names}")
    check_heldout(cfg.data, cfg.heldout)
    catalogs = {dataset_name(d): build_catalog(PrepareConfig(data=d, domain=dataset_name(d)), Problems())
                for d in list(cfg.data) + list(cfg.heldout)}
    shared = check_heldout(cfg.data, cfg.heldout, catalogs, cfg.max_shared_item_fraction)
    merged = merge({n: catalogs[n] for n in names}, cfg.max_users_per_domain, cfg.seed)
    merged.stats["heldout"] = {dataset_name(h): {"items_shared_with_pretraining": shared.get(dataset_name(h), 0)}
                               for h in cfg.heldout}
    write_catalog(merged, cfg.out)
    return merged
