"""The new-item mode's measured parts (``recommender.modes`` merges): the new items ranked among themselves by text
similarity to the user's recent items, and what each of that list's ranks is worth, measured on the training
catalog's validation with a seeded share of its known items treated as new. Text similarity reads only item text,
so it ranks a new item as it would a known one; no new item and no test user is looked at. ``bench/new_items.py``
and ``idgenrec recommend --new-items`` both use these."""
from __future__ import annotations

from typing import Collection, Sequence

from catalog.similarity import TextSimilarity
from catalog.split import samples
from catalog.store import Catalog
from eval.metrics import hit_rates_by_rank
from recommender.modes import NEW_MODE_DEPTH, pseudo_new_items


def text_among(catalog: Catalog, histories: Sequence[Sequence[str]], among: Collection[str] | None, k: int,
               similarity: TextSimilarity | None = None) -> list[list[str]]:
    """Per history (item ids, oldest first), the top ``k`` of ``among`` (None: every item) by text similarity to
    the user's recent items (history excluded). ``similarity``: the catalog's, built once by a caller that ranks
    batch after batch (default: built for this call)."""
    row = catalog.item_index()
    sim = similarity or TextSimilarity(catalog.texts)
    return [[catalog.item_ids[r] for r in top]
            for top in sim.ranking([[row[i] for i in h] for h in histories], k,
                                   among=None if among is None else [row[i] for i in among])]


def new_mode_worth(catalog: Catalog, share: float, seed: int, max_history: int,
                   items: Sequence[str] | None = None, similarity: TextSimilarity | None = None) -> dict:
    """The new-item mode's hit rate per rank (``rates``, ``NEW_MODE_DEPTH`` of them) on ``catalog``'s validation:
    ``share`` of its items (of ``items`` when given: the known ones, in a catalog that already holds new items)
    drawn as pseudo-new (``pseudo_new_items``), the users whose validation target is one of them, those items ranked
    among themselves by text similarity (``similarity``: the catalog's, when the caller has it built)."""
    pseudo = pseudo_new_items(catalog.item_ids if items is None else items, share, seed)
    cases = [s for s in samples(catalog.sequences, "valid", max_history) if s.target in pseudo]
    lists = text_among(catalog, [list(s.history) for s in cases], pseudo, NEW_MODE_DEPTH, similarity)
    return {"users": len(cases), "pseudo_new_items": len(pseudo),
            "rates": hit_rates_by_rank(lists, [s.target for s in cases], NEW_MODE_DEPTH)}
