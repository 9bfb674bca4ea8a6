"""``idgenrec ids``: unique textual IDs for every item (and optionally every user), with Ray or in this process.

N generator actors each load the model once and work on fixed shards of the catalog; one registry actor owns the
taken IDs. Work runs in bulk-synchronous rounds (see idgen.algorithm1): each round, shards of pending items go to
whichever actor is free, and their proposals are claimed at the registry in shard order, which is item order. So the
table is identical whatever the number of actors. Every shard's proposals and every finished round are saved under
``out/work/`` (atomically): a resubmitted job continues from there and ends with the same table. With ``actors: 0``
the same rounds run in this process (one generator, the taken IDs in a set): no Ray needed, e.g. on a lone GPU box.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from catalog.id_table import ITEM_TABLE, USER_TABLE, Escalation, write_id_table
from catalog.split import MAX_HISTORY
from catalog.store import read_catalog
from catalog.tokenizer import load_tokenizer, tokenizer_fingerprint
from idgen.algorithm1 import (Algorithm1Config, Assignment, Rounds, State, claim_round, escalation_fractions,
                              run_rounds, window)
from cluster.ray_session import gpu_share, start_ray, stop_ray
from idgen.userids import user_id_sources
from infra.atomic import atomic_path, write_json
from infra.config import config_to_dict
from infra.device import peak_rss_mb, resolve_device
from infra.errors import DataError
from infra.fingerprint import changed_inputs, content_digest, read_stamp, set_aside, step_done, write_stamp
from seq2seq.model import model_meta
from infra.progress import progress

log = logging.getLogger("idgenrec.ids")
NOT_SETTINGS = ("catalog", "model", "out", "actors", "address", "device", "gpus_per_actor")
LEGACY_NOT_SETTINGS = ("actors", "address", "out", "device", "gpus_per_actor")  # the key held paths until 2026-12-07
LEGACY_SOURCE_TOKENS = 64  # what a generator without the record (e.g. a downloaded one) is read with


@dataclass
class IDJobConfig(Algorithm1Config):
    """The job's own fields; Algorithm 1's (groups, lambda_*, window_width, max_windows, ...) are inherited."""

    catalog: Path | None = None
    out: Path | None = None
    model: Path | None = None
    actors: int = 2
    address: str | None = None
    shard_size: int = 256
    batch_size: int = 64
    max_source_tokens: int = 0
    user_ids: bool = False
    max_history: int = MAX_HISTORY
    device: str = "auto"
    gpus_per_actor: float | None = None

    def check(self) -> None:
        if self.actors < 0 or self.shard_size < 1 or self.batch_size < 1:
            raise ValueError("actors must be >= 0, shard_size and batch_size >= 1")

    def algorithm1(self) -> Algorithm1Config:
        return Algorithm1Config(**{f.name: getattr(self, f.name) for f in fields(Algorithm1Config)})

    def result_hash(self, leaving_out: tuple[str, ...] = NOT_SETTINGS) -> str:
        """The settings the table depends on: resuming with another value would mix tables. Not where things are
        (paths: the catalog and the generator are keyed by their content beside this, so a moved run resumes) nor
        how the work is spread (actors, address, device). ``leaving_out``: the fields left out (``LEGACY_NOT_SETTINGS``
        gives the key of tables stamped before the paths left it)."""
        keys = {k: str(v) for k, v in asdict(self).items() if k not in leaving_out}
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


HELP = {
    "beams_per_group": "beams in each diverse group (the paper: 1)",
    "lambda_start": "the diversity penalty of the first attempt (the paper: 1)",
    "lambda_step": "how much the penalty rises each time every candidate of an item was taken",
    "catalog": "catalog directory (from idgenrec prepare)",
    "out": "output directory: item_ids.parquet, user_ids.parquet, summary.json, work/ (resume state)",
    "model": "ID generator directory (model + tokenizer, e.g. from idgenrec idgen-warmstart)",
    "actors": "generator actors (one CPU or a GPU share each); 0: generate in this process, without Ray",
    "address": "Ray cluster address (default: RAY_ADDRESS if set, else a local Ray instance)",
    "shard_size": "items per shard (the unit of work and of resume)",
    "max_source_tokens": "item text tokens the generator reads (0: as it learned, recorded at its warm start; "
                         f"else {LEGACY_SOURCE_TOKENS})",
    "user_ids": "also generate user IDs, one per (user, target position), from history item IDs only",
    "groups": "k: diverse beam groups (= candidates per attempt)",
    "lambda_max": "highest diversity penalty before the length window widens",
    "window_width": "length windows are [1, w], [w, 2w], ...",
    "max_windows": "windows to try before giving up on an item",
    "no_repeat_ngram_size": "n > 0: no n-gram twice in an ID (1: no token twice; 0: off, as the paper)",
    "copy_source": "IDs of tokens of the item's own text only (for thin text: names a generator cannot copy yet)",
    "on_exhausted": "an item with every candidate taken at the last window: suffix (its best candidate plus a tag of "
                    "its own letters) or error (the paper: the job fails)",
    "device": "auto (actors take a GPU share when the Ray cluster has GPUs), cpu or cuda",
    "gpus_per_actor": "GPU share each actor requests (default: the cluster's GPUs split among the actors, at most 1)",
}


def check_texts(texts: list[str], names: list[str], where: Path) -> None:
    empty = [n for n, t in zip(names, texts) if not t.strip()]
    if empty:
        raise DataError(where, None, f"{len(empty)} item(s) with empty text, e.g. {empty[:5]}: no ID can be "
                        "generated from nothing (fix the data or re-run prepare with fallback fields)")
    seen: set[str] = set()
    dup = [n for n in names if n in seen or seen.add(n)]
    if dup:
        raise DataError(where, None, f"duplicate item ids {dup[:5]}")


def check_id_space(n: int, vocab_size: int, specials: int, cfg: Algorithm1Config) -> None:
    """Fail early when there are more items than distinct token sequences up to the longest window."""
    longest = window(State(0, cfg.max_windows - 1), cfg)[1]
    v = vocab_size - specials
    space = sum(v ** L for L in range(1, longest + 1)) if v > 1 else longest
    if n > space:
        raise ValueError(f"{n} items but only {space} distinct IDs of at most {longest} tokens over a vocabulary of "
                         f"{v}: use a larger vocabulary or raise max_windows")


def save_rounds(rounds: Rounds, path: Path) -> None:
    """The driver's state after a round, atomically (the resume point of the job)."""
    with atomic_path(path) as tmp:
        pq.write_table(pa.table({"id": rounds.ids, "lam": [s.lam for s in rounds.states],
                                 "window": [s.window for s in rounds.states], "attempts": rounds.attempts}), tmp)


def load_rounds(path: Path, rnd: int) -> Rounds:
    t = pq.read_table(path).to_pydict()
    return Rounds(rnd, [State(a, b) for a, b in zip(t["lam"], t["window"])], t["attempts"], t["id"])


def _latest_round(work: Path) -> tuple[int, Path] | None:
    rounds = sorted(work.glob("round_*.parquet"))
    return (int(rounds[-1].stem.split("_")[1]), rounds[-1]) if rounds else None


def _proposals_path(work: Path, rnd: int, shard: int) -> Path:
    return work / f"proposals_r{rnd:03d}" / f"shard_{shard:05d}.json"


class SavedRounds:
    """Algorithm 1's hooks for the job: proposals from the workers (Ray actors, or this process), each shard's kept
    in ``work`` as it comes and reused by a rerun; claims at the workers' registry; every round saved and logged."""

    def __init__(self, work: Path, texts: list[str], workers):
        self.work, self.texts, self.workers = work, texts, workers
        self.bar, self.t0, self.pending = None, 0.0, 0

    def proposals(self, rnd: int, shards: dict[int, list[int]], rounds: Rounds) -> Iterator[list[list[str]]]:
        todo = [j for j in shards if not _proposals_path(self.work, rnd, j).exists()]
        fresh = self.workers.propose([(j, [self.texts[i] for i in shards[j]],
                                       [tuple(rounds.states[i]) for i in shards[j]]) for j in todo])
        self.t0, self.pending = time.time(), sum(map(len, shards.values()))
        self.bar = progress(total=self.pending, desc=f"{self.work.name} round {rnd}", unit="item")
        for j in shards:
            path = _proposals_path(self.work, rnd, j)
            if path.exists():
                yield json.loads(path.read_text())
                continue
            cands = next(fresh)
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(cands))
            yield cands

    def claim(self, pairs: list[tuple[int, list[str]]], last: set[int]) -> tuple[list[tuple[int, str]], list[int]]:
        return self.workers.claim(pairs, last)

    def round_done(self, rounds: Rounds, claimed: int, retry: int, suffixed: int) -> None:
        self.bar.close()
        save_rounds(rounds, self.work / f"round_{rounds.round:03d}.parquet")
        if suffixed:
            log.warning("%s round %d: %d item(s) had every candidate taken at the last state and took a tagged "
                        "ID (on_exhausted: suffix)", self.work.name, rounds.round, suffixed)
        log.info("%s round %d: %d claimed, %d retry at a higher lambda or longer window (%.1f items/s)",
                 self.work.name, rounds.round, claimed, retry, self.pending / max(time.time() - self.t0, 1e-9))


class RayWorkers:
    """Generator actors proposing for shards, and the one registry actor resolving claims (a Ray cluster)."""

    def __init__(self, cfg: IDJobConfig):
        import ray

        from cluster.generator_actor import GeneratorActor
        from cluster.registry import Registry

        gpus, device = gpu_share(cfg.device, ray.cluster_resources().get("GPU", 0), cfg.actors, cfg.gpus_per_actor)
        log.info("%d generator actors on %s%s", cfg.actors, device, f" ({gpus:g} GPU each)" if gpus else "")
        self.actors = [GeneratorActor.options(num_gpus=gpus).remote(
            str(cfg.model), asdict(cfg.algorithm1()), cfg.batch_size, cfg.max_source_tokens, device)
            for _ in range(cfg.actors)]
        self.registry = Registry.remote()

    def reset(self, taken: list[str]) -> None:
        import ray

        ray.get(self.registry.reset.remote(taken))

    def propose(self, jobs: list[tuple[int, list[str], list[tuple]]]) -> Iterator[list[list[str]]]:
        """Candidates for each (shard, texts, states), in the order given, from whichever actor is free."""
        from ray.util import ActorPool

        return iter(ActorPool(self.actors).map(lambda a, job: a.propose.remote(*job), jobs))

    def claim(self, pairs: list[tuple[int, list[str]]], last: set[int]) -> tuple[list[tuple[int, str]], list[int]]:
        import ray

        return ray.get(self.registry.claim.remote(pairs, sorted(last)))

    def peak_memory_mb(self) -> dict:
        import ray

        return {"actors": ray.get([a.peak_memory_mb.remote() for a in self.actors]),
                "registry": ray.get(self.registry.peak_memory_mb.remote())}


class LocalWorkers:
    """The same work in this process, without Ray (``actors: 0``): one generator, the taken IDs in memory."""

    def __init__(self, cfg: IDJobConfig):
        from idgen.proposer import Proposer
        from seq2seq.model import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer(cfg.model)
        device = resolve_device(cfg.device)
        log.info("generating in this process on %s", device)
        self.proposer = Proposer(model, tok, cfg.algorithm1(), cfg.batch_size, cfg.max_source_tokens, device)
        self.taken: set[str] = set()

    def reset(self, taken: list[str]) -> None:
        self.taken = set(taken)

    def propose(self, jobs: list[tuple[int, list[str], list[tuple]]]) -> Iterator[list[list[str]]]:
        return (self.proposer.propose(texts, states) for _, texts, states in jobs)

    def claim(self, pairs: list[tuple[int, list[str]]], last: set[int]) -> tuple[list[tuple[int, str]], list[int]]:
        claimed, failed = claim_round(self.taken, pairs, last)
        return [tuple(c) for c in claimed], failed

    def peak_memory_mb(self) -> dict:
        return {"process": peak_rss_mb()}


def run_kind(texts: list[str], names: list[str], work: Path, cfg: IDJobConfig, workers,
             taken: Sequence[str] = ()) -> list[Assignment]:
    """Algorithm 1 over ``texts`` with the workers (Ray actors + registry, or this process); resumes from ``work``.
    ``taken``: IDs that exist already (add-items: the table's), which no new ID may equal."""
    work.mkdir(parents=True, exist_ok=True)
    latest = _latest_round(work)
    rounds = load_rounds(latest[1], latest[0]) if latest else Rounds.start(len(texts))
    if latest:
        log.info("%s: resuming after round %d (%d of %d assigned)", work.name, rounds.round,
                 sum(i is not None for i in rounds.ids), len(texts))
    # The registry starts from the finished rounds; after that its claims keep it equal to the assigned IDs.
    workers.reset(list(taken) + [x for x in rounds.ids if x is not None])
    hooks = SavedRounds(work, texts, workers)
    return run_rounds(rounds, cfg.algorithm1(), cfg.shard_size, hooks, names, lambda n: hooks.bar.update(n))


def escalation(assignments: list[Assignment]) -> Escalation:
    """The ID table's record of how each ID was found."""
    return Escalation(attempts=[a.attempts for a in assignments], lam=[a.lam for a in assignments],
                      window_lo=[a.window[0] for a in assignments], window_hi=[a.window[1] for a in assignments])


def with_generator_settings(cfg: IDJobConfig) -> IDJobConfig:
    """``max_source_tokens`` 0 resolved to the length the generator learned on (its ``idgenrec.json``): every ID job
    that uses a generator (the recipe's, zeroshot's, add-items') then reads items the way it was trained to."""
    if cfg.max_source_tokens:
        return cfg
    return replace(cfg, max_source_tokens=model_meta(cfg.model).get("max_source_tokens", LEGACY_SOURCE_TOKENS))


def run_ids(cfg: IDJobConfig) -> dict:
    if cfg.catalog is None or cfg.out is None or cfg.model is None:
        raise ValueError("ids needs catalog, out and model")
    cfg = with_generator_settings(cfg)
    t_start = time.time()
    cat = read_catalog(cfg.catalog)
    check_texts(cat.texts, cat.item_ids, cfg.catalog)
    tok = load_tokenizer(cfg.model)  # the generator's own: its fingerprint goes with the table
    check_id_space(len(cat.item_ids), len(tok), len(tok.all_special_ids), cfg.algorithm1())
    out, work = Path(cfg.out), Path(cfg.out) / "work"
    resume_or_restart(work, {"settings": cfg.result_hash(), "catalog": content_digest(cfg.catalog),
                             "model": content_digest(cfg.model)})
    with id_workers(cfg) as workers:
        return _generate(cfg, cat, tok, out, work, t_start, workers)


def ids_done(name: str, cfg: IDJobConfig, inputs: dict[str, str]) -> bool:
    """``step_done`` for a pipeline's ID step (``inputs``: its content fingerprints and ``cfg.result_hash()``). A
    table stamped with the settings key of before it left out paths, for these very settings and paths, is restamped
    rather than made again (a table made again has other seconds in its summary.json, and everything keyed on its
    folder would be redone)."""
    out = Path(cfg.out)
    stamp = read_stamp(out)
    if stamp is not None and stamp == inputs | {"settings": cfg.result_hash(LEGACY_NOT_SETTINGS)}:
        write_stamp(out, inputs)
        log.info("%s: stamped with the settings key of before paths left it; the same settings: restamped", out)
    return step_done(name, out, inputs, (out / ITEM_TABLE).exists())


def run_ids_step(cfg: IDJobConfig, inputs: dict[str, str]) -> dict:
    """A pipeline's ID step, once ``step_done`` said it must run: a table its folder holds from other settings is set
    aside first (the job itself refuses to mix settings in one folder, as it should for a user's own ``--out``), then
    the job runs (resuming its own work of the same inputs) and the folder is stamped with ``inputs``."""
    stamp = read_stamp(cfg.out)
    if stamp is not None and stamp.get("settings") != inputs["settings"]:
        set_aside(cfg.out)
    result = run_ids(cfg)
    write_stamp(cfg.out, inputs)
    return result


def resume_or_restart(work: Path, inputs: dict[str, str]) -> None:
    """Resume the saved rounds in ``work`` only when they were made from inputs of the same content. Other settings
    are an error (use another --out); a changed catalog or generator (e.g. retrained in place) starts over."""
    stamp = read_stamp(work)
    if stamp is None and work.is_dir() and any(work.iterdir()):
        log.warning("%s: resume state without a record of its inputs: starting over", work)
        shutil.rmtree(work)
    elif stamp is not None and stamp.get("settings") != inputs["settings"]:
        raise ValueError(f"{work.parent}: holds work of a job with another configuration; use another --out or "
                         "remove it")
    elif stamp is not None and stamp != inputs:
        log.warning("%s: made from other inputs (changed: %s): starting over", work,
                    ", ".join(changed_inputs(work, inputs)))
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    write_stamp(work, inputs)


@contextlib.contextmanager
def id_workers(cfg: IDJobConfig) -> Iterator[LocalWorkers | RayWorkers]:
    """This process's generator (``actors: 0``), or Ray actors and the registry (Ray started and stopped here
    unless a cluster is already connected)."""
    if cfg.actors == 0:
        yield LocalWorkers(cfg)
        return
    started = start_ray(cfg.address, cfg.actors)
    try:
        yield RayWorkers(cfg)
    finally:
        if started:
            stop_ray()


def _generate(cfg: IDJobConfig, cat, tok, out: Path, work: Path, t_start: float, workers) -> dict:
    summary: dict = {"actors": cfg.actors, "config": config_to_dict(cfg)}
    t0 = time.time()
    items = run_kind(cat.texts, cat.item_ids, work / "items", cfg, workers)
    summary["items"] = {**escalation_fractions(items, cfg.algorithm1()), "seconds": round(time.time() - t0, 2),
                        "items_per_s": round(len(items) / max(time.time() - t0, 1e-9), 2)}
    write_id_table(out / ITEM_TABLE, {"item_id": cat.item_ids}, [a.id for a in items], tok, escalation(items))
    if cfg.user_ids:
        item_text = dict(zip(cat.item_ids, (a.id for a in items)))
        keys, texts = user_id_sources(cat.sequences, item_text, cfg.max_history)
        names = [f"{cat.users[k.user]}@{k.position}" for k in keys]
        t1 = time.time()
        users = run_kind(texts, names, work / "users", cfg, workers)
        summary["users"] = {**escalation_fractions(users, cfg.algorithm1()), "seconds": round(time.time() - t1, 2)}
        write_id_table(out / USER_TABLE, {"user_id": [cat.users[k.user] for k in keys],
                                          "position": [k.position for k in keys]},
                       [a.id for a in users], tok, escalation(users))
    summary["tokenizer_fingerprint"] = tokenizer_fingerprint(tok)
    summary["peak_memory_mb"] = workers.peak_memory_mb()
    summary["wall_seconds"] = round(time.time() - t_start, 2)
    write_json(out / "summary.json", summary)
    return summary
