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
from typing import (Callable, Collection, Iterable, Iterator, Mapping, MutableMapping, MutableSequence, NamedTuple,
                    Protocol, Sequence)

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


@dataclass
class Rounds:
    """Where the rounds stand: the round just finished, each item's state, attempts and ID (None: pending). The
    driver's whole state, so a caller that saves it after every round can resume from it."""

    round: int
    states: list[State]
    attempts: list[int]
    ids: list[str | None]

    @classmethod
    def start(cls, n: int) -> "Rounds":
        return cls(0, [State() for _ in range(n)], [0] * n, [None] * n)

    def assignments(self, cfg: Algorithm1Config) -> list[Assignment]:
        return [Assignment(i, self.ids[i], self.attempts[i], penalty(self.states[i], cfg), window(self.states[i], cfg))
                for i in range(len(self.ids))]


class RoundHooks(Protocol):
    """What the driver needs from where it runs (this process, or Ray actors and a registry, with saved work)."""

    def proposals(self, rnd: int, shards: dict[int, list[int]], rounds: Rounds) -> Iterator[list[list[str]]]:
        """Candidates (best first) for each shard's items at their states, shard by shard in ``shards`` order."""

    def claim(self, pairs: list[tuple[int, list[str]]], last: set[int]) -> tuple[list[tuple[int, str]], list[int]]:
        """:func:`claim_round` against every ID taken so far."""

    def round_done(self, rounds: Rounds, claimed: int, retry: int, suffixed: int) -> None:
        """After each round (save it, log it)."""


def run_rounds(rounds: Rounds, cfg: Algorithm1Config, shard_size: int, hooks: RoundHooks,
               names: list[str] | None = None, on_shard: Callable[[int], None] | None = None) -> list[Assignment]:
    """Algorithm 1 in bulk-synchronous rounds from ``rounds`` (fresh or resumed): each round, the pending items
    propose in shards of ``shard_size`` and claim in item order; failed items move to their next state."""
    while True:
        pending = [i for i, x in enumerate(rounds.ids) if x is None]
        if not pending:
            return rounds.assignments(cfg)
        shards: dict[int, list[int]] = {}
        for i in pending:
            shards.setdefault(i // shard_size, []).append(i)
        failed_all, claimed_n, suffixed = [], 0, 0
        for items, cands in zip(shards.values(), hooks.proposals(rounds.round + 1, shards, rounds)):
            last = last_chance(items, rounds.states, cfg)
            claimed, failed = hooks.claim(list(zip(items, cands)), last)
            own = dict(zip(items, cands))
            suffixed += sum(item in last and text not in map(normalize_id, own[item]) for item, text in claimed)
            for item, text in claimed:
                rounds.ids[item] = text
            failed_all += failed
            claimed_n += len(claimed)
            if on_shard:
                on_shard(len(items))
        for i in pending:
            rounds.attempts[i] += 1
        advance(failed_all, rounds.states, cfg, names)
        rounds.round += 1
        hooks.round_done(rounds, claimed_n, len(failed_all), suffixed)


class _InMemory:
    """Hooks for one process with no saved work: ``propose(items, state)`` for items sharing a state."""

    def __init__(self, propose: Callable[[list[int], State], list[list[str]]], taken: set[str],
                 on_round: Callable[[int, int, int], None] | None):
        self.propose, self.taken, self.on_round = propose, taken, on_round

    def proposals(self, rnd: int, shards: dict[int, list[int]], rounds: Rounds) -> Iterator[list[list[str]]]:
        for items in shards.values():
            by_state: dict[State, list[int]] = {}
            for i in items:
                by_state.setdefault(rounds.states[i], []).append(i)
            found: dict[int, list[str]] = {}
            for state in sorted(by_state):
                found.update(zip(by_state[state], self.propose(by_state[state], state)))
            yield [found[i] for i in items]

    def claim(self, pairs, last):
        return claim_round(self.taken, pairs, last)

    def round_done(self, rounds: Rounds, claimed: int, retry: int, suffixed: int) -> None:
        if self.on_round:
            self.on_round(rounds.round, claimed, retry)


def run_algorithm1(items: list[int], propose: Callable[[list[int], State], list[list[str]]], cfg: Algorithm1Config,
                   taken: set[str] | None = None, on_round: Callable[[int, int, int], None] | None = None,
                   names: list[str] | None = None) -> dict[int, Assignment]:
    """The same rounds in one process, over items ``0..n-1`` listed in ``items``: ``propose(items, state)`` gives
    candidates (best first) for items sharing a state."""
    rounds = Rounds.start(max(items, default=-1) + 1)
    for i in set(range(len(rounds.ids))) - set(items):
        rounds.ids[i] = ""  # not asked for: never pending
    hooks = _InMemory(propose, set() if taken is None else taken, on_round)
    done = run_rounds(rounds, cfg, max(len(rounds.ids), 1), hooks, names)
    return {i: done[i] for i in items}


def escalation_fractions(assignments: Iterable[Assignment], cfg: Algorithm1Config) -> dict[str, float]:
    """Fractions of items that needed lambda above its start, and a longer window (paper: 11.20% and 3.72%)."""
    rows = list(assignments)
    n = max(len(rows), 1)
    return {
        "items": len(rows),
        "needed_higher_lambda": sum(a.lam > cfg.lambda_start or a.window[0] > 1 for a in rows) / n,
        "needed_longer_window": sum(a.window[0] > 1 for a in rows) / n,
    }
