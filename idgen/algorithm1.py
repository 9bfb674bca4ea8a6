"""The paper's Algorithm 1: a unique textual ID for every item, by diverse beam search with escalation.

For an item, take the ``groups`` (k = 10) candidates of a diverse beam search; the item gets the best one not yet
taken. If all are taken, retry with the diversity penalty lambda raised by ``lambda_step`` (1, 2, ..., 10); past
``lambda_max`` lambda resets and the length window widens ([1, 10] tokens, then [10, 20], [20, 30], ...).

We run it in bulk-synchronous rounds so that it parallelizes and stays deterministic: in each round every pending
item proposes candidates at its own (lambda, window) state, then claims are resolved in the fixed item order
(:func:`claim_round`), so an item's result depends only on the catalog, never on how the work was split. IDs are
compared after :func:`normalize_id` (lower case, single spaces).

Three additions to the paper, all config fields: ``no_repeat_ngram_size`` (default 1: no token twice in an ID) keeps
an under-trained generator from filling its window with repeats ('uxcell a a a a a a'), which carry no meaning for
the recommender; and ``on_exhausted: suffix`` lets an item whose every candidate is taken at the last state (e.g.
many chain stores with identical text) take its best candidate with the first free tag appended ('starbucks coffee
a'), instead of failing the whole job (``on_exhausted: error``, the paper's behaviour); ``copy_source`` (default
off) lets the generator write only words of the item's own text, for thin text whose names it never learned to copy.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Collection, Iterable, Mapping, MutableMapping, MutableSequence, NamedTuple, Sequence

from seq2seq.beam_search import DiverseBeamConfig


@dataclass
class Algorithm1Config:
    groups: int = 10
    beams_per_group: int = 1
    lambda_start: float = 1.0
    lambda_step: float = 1.0
    lambda_max: float = 10.0
    window_width: int = 10
    max_windows: int = 3
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = 1
    on_exhausted: str = "suffix"
    copy_source: bool = False

    def __post_init__(self):
        if self.on_exhausted not in ("suffix", "error"):
            raise ValueError(f"on_exhausted must be 'suffix' or 'error', not {self.on_exhausted!r}")


class State(NamedTuple):
    """Where an item is in the escalation: lambda index (0 = lambda_start) and window index (0 = [1, width])."""

    lam: int = 0
    window: int = 0


class IDSpaceExhausted(RuntimeError):
    """An item found no free ID even at the widest window and highest penalty."""


def window(state: State, cfg: Algorithm1Config) -> tuple[int, int]:
    """Token-length window of a state: [1, w], then [w, 2w], [2w, 3w], ..."""
    w = cfg.window_width
    return (1, w) if state.window == 0 else (w * state.window, w * (state.window + 1))


def penalty(state: State, cfg: Algorithm1Config) -> float:
    return cfg.lambda_start + cfg.lambda_step * state.lam


def beam_config(state: State, cfg: Algorithm1Config) -> DiverseBeamConfig:
    lo, hi = window(state, cfg)
    return DiverseBeamConfig(groups=cfg.groups, beams_per_group=cfg.beams_per_group,
                             diversity_penalty=penalty(state, cfg), min_new_tokens=lo, max_new_tokens=hi,
                             length_penalty=cfg.length_penalty, no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                             copy_source=cfg.copy_source)


def next_state(state: State, cfg: Algorithm1Config) -> State | None:
    """Raise lambda; past lambda_max reset it and widen the window; None when the last window is spent."""
    if penalty(State(state.lam + 1, state.window), cfg) <= cfg.lambda_max + 1e-9:
        return State(state.lam + 1, state.window)
    if state.window + 1 < cfg.max_windows:
        return State(0, state.window + 1)
    return None


def normalize_id(text: str) -> str:
    return " ".join(text.lower().split())


class Claimed(NamedTuple):
    item: int
    id: str


def suffixed(candidates: list[str], taken: set[str]) -> str | None:
    """The best candidate with the first free tag appended: the last resort of ``suffix``.

    Tags are words over the candidate's own letters ('a', 'c', ..., then 'aa', 'ac', ...): those came out of the
    generator's tokenizer, so they tokenize without an unknown token. (Digits did not: Yelp's tokenizer has none,
    and 'x 2' and 'x 3' became the same tokens.)"""
    base = next((n for n in map(normalize_id, candidates) if n), None)
    if base is None:
        return None
    letters = sorted(set(base) - {" "})
    for length in itertools.count(1):
        for tag in itertools.product(letters, repeat=length):
            text = f"{base} {''.join(tag)}"
            if text not in taken:
                return text


def claim_round(taken: set[str], proposals: Iterable[tuple[int, list[str]]],
                last_chance: Collection[int] = ()) -> tuple[list[Claimed], list[int]]:
    """In the given (fixed) order, each item takes its first candidate not in ``taken`` (updated in place); an item
    in ``last_chance`` whose candidates are all taken takes a :func:`suffixed` one."""
    claimed, failed = [], []
    for item, candidates in proposals:
        free = (n for n in map(normalize_id, candidates) if n and n not in taken)
        norm = next(free, None) or (suffixed(candidates, taken) if item in last_chance else None)
        if norm is None:
            failed.append(item)
        else:
            taken.add(norm)
            claimed.append(Claimed(item, norm))
    return claimed, failed


def last_chance(items: Iterable[int], states: Mapping[int, State] | Sequence[State], cfg: Algorithm1Config) -> set[int]:
    """Items at their last state, which take a suffixed ID rather than fail (``on_exhausted: suffix``)."""
    if cfg.on_exhausted != "suffix":
        return set()
    return {i for i in items if next_state(states[i], cfg) is None}


@dataclass
class Assignment:
    """The record kept per item: its ID and how hard it was to find."""

    item: int
    id: str
    attempts: int
    lam: float
    window: tuple[int, int]


def advance(failed: list[int], states: MutableMapping[int, State] | MutableSequence[State], cfg: Algorithm1Config,
            names: list[str] | None = None) -> None:
    """Move failed items to their next state (``states`` indexed by item, updated in place); raise when one has
    none left."""
    for item in failed:
        nxt = next_state(states[item], cfg)
        if nxt is None:
            name = names[item] if names else item
            raise IDSpaceExhausted(
                f"item {name!r}: every candidate up to lambda={cfg.lambda_max} and window {window(states[item], cfg)} "
                f"is taken; raise max_windows or use a larger vocabulary")
        states[item] = nxt


def run_algorithm1(items: list[int], propose: Callable[[list[int], State], list[list[str]]], cfg: Algorithm1Config,
                   taken: set[str] | None = None, on_round: Callable[[int, int, int], None] | None = None,
                   names: list[str] | None = None) -> dict[int, Assignment]:
    """Single-process driver: ``propose(items, state)`` gives candidates (best first) for items sharing a state."""
    taken = set() if taken is None else taken
    states = {i: State() for i in items}
    attempts = {i: 0 for i in items}
    result: dict[int, Assignment] = {}
    pending, rnd = sorted(items), 0
    while pending:
        by_state: dict[State, list[int]] = {}
        for i in pending:
            by_state.setdefault(states[i], []).append(i)
        proposals: dict[int, list[str]] = {}
        for state in sorted(by_state):
            group = by_state[state]
            proposals.update(zip(group, propose(group, state)))
        for i in pending:
            attempts[i] += 1
        claimed, failed = claim_round(taken, ((i, proposals[i]) for i in pending), last_chance(pending, states, cfg))
        for c in claimed:
            s = states[c.item]
            result[c.item] = Assignment(c.item, c.id, attempts[c.item], penalty(s, cfg), window(s, cfg))
        advance(failed, states, cfg, names)
        rnd += 1
        if on_round:
            on_round(rnd, len(claimed), len(failed))
        pending = failed
    return result


def escalation_fractions(assignments: Iterable[Assignment], cfg: Algorithm1Config) -> dict[str, float]:
    """Fractions of items that needed lambda above its start, and a longer window (paper: 11.20% and 3.72%)."""
    rows = list(assignments)
    n = max(len(rows), 1)
    return {
        "items": len(rows),
        "needed_higher_lambda": sum(a.lam > cfg.lambda_start or a.window[0] > 1 for a in rows) / n,
        "needed_longer_window": sum(a.window[0] > 1 for a in rows) / n,
    }
