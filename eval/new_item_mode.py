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
from eval.metrics import hit_rate_by_score, hit_rates_by_rank
from recommender.modes import NEW_MODE_DEPTH, pseudo_new_items, worth_by_score


def scored_text_among(catalog: Catalog, histories: Sequence[Sequence[str]], among: Collection[str] | None, k: int,
                      similarity: TextSimilarity | None = None) -> list[list[tuple[str, float]]]:
    """Per history (item ids, oldest first), the top ``k`` of ``among`` (None: every item) by text similarity to
    the user's recent items (history excluded), as ``(item id, cosine)`` pairs. ``similarity``: the catalog's,
    built once by a caller that ranks batch after batch (default: built for this call)."""
    row = catalog.item_index()
    sim = similarity or TextSimilarity(catalog.texts)
    return [[(catalog.item_ids[r], v) for r, v in top]
            for top in sim.scored_ranking([[row[i] for i in h] for h in histories], k,
                                          among=None if among is None else [row[i] for i in among])]


def text_among(catalog: Catalog, histories: Sequence[Sequence[str]], among: Collection[str] | None, k: int,
               similarity: TextSimilarity | None = None) -> list[list[str]]:
    """:func:`scored_text_among` without the cosines."""
    return [[i for i, _ in top] for top in scored_text_among(catalog, histories, among, k, similarity)]


def new_mode_worth(catalog: Catalog, share: float, seed: int, max_history: int,
                   items: Sequence[str] | None = None, similarity: TextSimilarity | None = None) -> dict:
    """The new-item mode's worth, measured on ``catalog``'s validation: ``share`` of its items (of ``items`` when
    given: the known ones, in a catalog that already holds new items) drawn as pseudo-new (``pseudo_new_items``),
    the users whose validation target is one of them, those items ranked among themselves by text similarity
    (``similarity``: the catalog's, when the caller has it built). ``rates``: the hit rate per rank
    (``NEW_MODE_DEPTH`` of them); ``by_score``: the hit rate of an entry given its cosine to the history
    (``eval.metrics.hit_rate_by_score``), which :func:`new_mode_lists` uses."""
    pseudo = pseudo_new_items(catalog.item_ids if items is None else items, share, seed)
    cases = [s for s in samples(catalog.sequences, "valid", max_history) if s.target in pseudo]
    lists = scored_text_among(catalog, [list(s.history) for s in cases], pseudo, NEW_MODE_DEPTH, similarity)
    entries = [(v, i == s.target) for top, s in zip(lists, cases) for i, v in top]
    return {"users": len(cases), "pseudo_new_items": len(pseudo),
            "rates": hit_rates_by_rank([[i for i, _ in top] for top in lists], [s.target for s in cases],
                                       NEW_MODE_DEPTH),
            "by_score": hit_rate_by_score([v for v, _ in entries], [h for _, h in entries])}


def new_mode_lists(catalog: Catalog, histories: Sequence[Sequence[str]], new_items: Collection[str], worth: dict,
                   by_score: bool = True, similarity: TextSimilarity | None = None
                   ) -> list[tuple[list[str], list[float]]]:
    """Per history, the new-item mode's list (the new items by text similarity) and each entry's worth: from its
    cosine (``worth["by_score"]``; a weak best match is worth little, a close one much) or, with ``by_score``
    off or no fit, from its rank (``worth["rates"]``)."""
    lists = scored_text_among(catalog, histories, new_items, NEW_MODE_DEPTH, similarity)
    if not by_score or not worth.get("by_score"):
        return [([i for i, _ in top], list(worth["rates"])) for top in lists]
    return [([i for i, _ in top], worth_by_score(worth["by_score"], [v for _, v in top])) for top in lists]
