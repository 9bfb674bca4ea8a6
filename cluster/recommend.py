"""``idgenrec recommend``: the next items for given histories, streamed as JSON lines.

Histories come from a file, or standard input, line by line in either layout: ``user_sequence.txt`` (a user, then
items oldest first; the whole line is the history) or JSON ``{"user": ..., "history": [...]}``. Each history gets
its top ``k`` items by trie-constrained beam search with the evaluation's prompt, so a test history (a user's items
but the last) gets the evaluation's top-k. Output lines: ``{"user": ..., "items": [...], "scores": [...]}`` (with
``with_ids``, the items' textual IDs too), written as each batch is decoded. A histories file is checked whole
before any work; with ``--out`` the output appears whole or not at all (with ``<out>.record.json`` saying which
model, IDs and settings made it), while standard output is streamed, so a bad line read from standard input stops the
job after the lines before it were written.

``--new-items`` (items added after training, e.g. by ``add-items``) turns on the new-item mode
(``recommender.modes``): a recommender rarely writes the IDs of items it never trained on, so the new items also get
a list of their own, ranked by text similarity to the history, mixed into each top k by each list's worth per rank:
ours' from the model's validation run (its ``explore_rates``), the new list's measured on the catalog's validation
with known items drawn as pseudo-new (``eval.new_item_mode``), and P(new) = the new items' share of the table. The
scores are then those estimated hit probabilities, not log-probabilities.
"""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Iterable, Iterator

from catalog.id_table import ITEM_TABLE, item_id_tokens, read_id_table
from catalog.similarity import TextSimilarity
from catalog.store import Catalog, read_catalog
from eval.new_item_mode import new_mode_worth, text_among
from infra.atomic import atomic_path, write_json, write_text
from infra.config import config_to_dict
from infra.device import resolve_device
from infra.errors import DataError, Problems, require_file, require_writable_file
from infra.fingerprint import content_digest, settings_digest
from infra.progress import progress
from recommender.decode import ranked_items
from recommender.prompts import EVAL_TEMPLATE, prompt_history, render_prompt
from recommender.repeats import merge_repeats, scored_histories
from recommender.id_prior import corrected_all, null_scores
from recommender.modes import NEW_MODE_DEPTH, merge_new_item_mode, new_item_share
from recommender.text_prior import merge_text_prior, prior_candidates
from recommender.trie import Trie
from seq2seq.model import load_model_and_tokenizer

log = logging.getLogger("idgenrec.recommend")
PATH_INPUTS = ("model", "ids", "candidates", "catalog", "new_items", "valid_metrics")  # keyed by their content


@dataclass
class RecommendConfig:
    model: Path | None = None
    ids: Path | None = None
    histories: Path | None = None
    out: Path | None = None
    k: int = 10
    beams: int = 20
    candidates: Path | None = None
    exclude_history: bool = False
    repeat_bias: float | None = None
    text_prior: float | None = None
    text_candidates: int = 20
    id_prior: float | None = None
    catalog: Path | None = None
    new_items: Path | None = None
    valid_metrics: Path | None = None
    with_ids: bool = False
    skip_bad: bool = False
    max_history: int = 0
    batch_size: int = 64
    length_penalty: float = 1.0
    max_source_tokens: int = 512
    actors: int = 0
    chunk: int = 512
    address: str | None = None
    device: str = "auto"

    def check(self) -> None:
        if not 1 <= self.k <= self.beams:
            raise ValueError(f"need 1 <= k <= beams, got k={self.k}, beams={self.beams}")
        if self.max_history < 0 or self.batch_size < 1 or self.chunk < 1:
            raise ValueError("max_history must be >= 0, batch_size and chunk >= 1")
        if self.actors > 0 and self.out is None:
            raise ValueError("actors need --out (results are kept per chunk there, so that a rerun resumes)")
        if self.exclude_history and self.repeat_bias is not None:
            raise ValueError("exclude_history drops the history items that repeat_bias would rank: pick one")
        if self.text_prior is not None and self.catalog is None:
            raise ValueError("text_prior needs --catalog (the items' text)")
        if self.new_items is not None and self.catalog is None:
            raise ValueError("new_items needs --catalog (the items' text and the validation the new-item mode is "
                             "measured on)")


HELP = {"model": "recommender directory (model + tokenizer)", "ids": "ID directory (item_ids.parquet) of the catalog",
        "histories": "file of histories (user_sequence.txt layout or JSON lines {\"user\", \"history\"}); "
                     "default or '-': standard input",
        "out": "JSON-lines output file, written atomically (default: standard output, streamed)",
        "k": "items per history", "beams": "beam width (>= k)",
        "candidates": "file of item ids, one per line: recommend only these (e.g. in stock, or new items); "
                      "default: every item of the table",
        "exclude_history": "drop items already in the history (fewer than k may remain)",
        "repeat_bias": "rank the history's items too, at the model's score of their IDs + this bias (the "
                       "repeat_bias that validation chose: the training run's summary.json); default off",
        "text_prior": "add this weight x each item's text similarity to the history's last items to the scores, the "
                      "most similar items joining the beams (the weight validation chose); default off",
        "text_candidates": "with a text prior: the most text-similar items scored by the model and merged",
        "id_prior": "subtract this beta x the model's score of each ID after a prompt with no history "
                    "(recommender.id_prior; the beta validation chose); default off",
        "catalog": "catalog directory with the items' text (for text_prior and new_items)",
        "new_items": "file of item ids added after training (e.g. by add-items), one per line: the new-item mode "
                     "mixes them into each list, ranked by text similarity to the history (needs --catalog); "
                     "default off",
        "valid_metrics": "with new_items: the model's validation metrics (idgenrec eval --split valid), whose "
                         "explore_rates say what each rank of the model's list is worth; default "
                         "<model>/eval/metrics_valid.json",
        "with_ids": "add the items' textual IDs to each line",
        "skip_bad": "skip and count histories with unknown items or none at all (default: stop with an error)",
        "max_history": "the most recent items a prompt holds (longer histories are cut, logged once; 0: as the "
                       "model was trained, recorded in its idgenrec.json, else 20)",
        "batch_size": "histories decoded together", "length_penalty": "beam score = log p / length ** this",
        "max_source_tokens": "prompt tokens kept",
        "actors": "Ray actors sharing the histories (0: this process); a local Ray starts unless --address or "
                  "RAY_ADDRESS (ray job submit) names a cluster",
        "chunk": "histories per actor task; with --out, finished chunks are kept beside it and a rerun skips them",
        "address": "Ray cluster address (default: RAY_ADDRESS, or a local instance)",
        "device": "auto (a GPU when present), cpu or cuda"}


def parse_history(line: str, source: str, number: int) -> tuple[str, list[str]]:
    """(user, items oldest first) from one line in either layout."""
    if line.lstrip().startswith("["):
        raise DataError(source, number, 'a JSON array: expected {"user": ..., "history": [item, ...]} or a '
                                        "user_sequence.txt line (user item item ...)")
    if line.lstrip().startswith("{"):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(source, number, f"malformed JSON: {e}") from e
        if not isinstance(rec, dict) or not isinstance(rec.get("history"), list):
            raise DataError(source, number, 'expected {"user": ..., "history": [item, ...]}')
        return str(rec.get("user", number)), [str(i) for i in rec["history"]]
    user, *items = line.split()
    return user, items


def read_histories(lines: Iterable[str], source: str, known: set[str], problems: Problems,
                   max_history: int) -> Iterator[tuple[str, list[str]]]:
    """Valid (user, last ``max_history`` items) pairs; unknown items and empty histories are problems."""
    cut = False
    for number, raw in enumerate(lines, start=1):
        line = _decoded(raw, source, number, problems)
        if line is None or not line.strip():
            continue
        user, items = parse_history(line.rstrip("\r\n"), source, number)
        if not items:
            problems.report("empty_history", source, number, f"user {user}: empty history")
            continue
        unknown = [i for i in items if i not in known]
        if unknown:
            problems.report("unknown_item", source, number, f"user {user}: unknown item(s) {unknown[:5]}")
            continue
        if len(items) > max_history and not cut:
            cut = True
            log.info("%s:%d: histories longer than %d items are cut to their last %d (logged once)", source, number,
                     max_history, max_history)
        yield user, items[-max_history:]


def _decoded(raw: str | bytes, source: str, number: int, problems: Problems) -> str | None:
    """A line as text; bytes that are not UTF-8 are a problem naming the line (None: skipped)."""
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.report("non_utf8_line", source, number, f"not UTF-8: byte 0x{raw[e.start]:02x} at column "
                                                         f"{e.start + 1}")
        return None


def read_candidates(path: Path, known: set[str]) -> set[str]:
    """Item ids, one per line; an unknown one is an error naming the line."""
    require_file(path)
    out = set()
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        item = line.strip()
        if item and item not in known:
            raise DataError(path, number, f"unknown item {item!r}")
        if item:
            out.add(item)
    if not out:
        raise DataError(path, None, "no candidate items")
    return out


class Ranker:
    """A recommender, its item IDs and trie, loaded once: ranks batches of valid histories (in this process or in
    a Ray actor)."""

    def __init__(self, cfg: RecommendConfig, device: str):
        self.cfg = cfg
        model, self.tok = load_model_and_tokenizer(cfg.model)
        self.model = model.to(device).eval()
        every = read_id_table(Path(cfg.ids) / ITEM_TABLE)["item_id"]
        texts, tokens = item_id_tokens(cfg.ids, every, self.tok)  # the recommender's tokens, as in eval
        self.id_of = dict(zip(every, texts))  # histories may hold any item
        keep = read_candidates(cfg.candidates, set(every)) if cfg.candidates else None
        rows = [n for n, i in enumerate(every) if keep is None or i in keep]
        self.item_ids = [every[n] for n in rows]  # what may be recommended
        self.trie = Trie.build([tokens[n] for n in rows], self.tok.eos_token_id, len(self.tok)).to(device)
        self.tokens_of = {every[n]: tokens[n] for n in rows}  # what repeat_bias may bring back
        self.every, self.row = every, {i: n for n, i in enumerate(every)}
        if cfg.id_prior:
            self.null = null_scores(self.model, self.tok, self.item_ids, self.tokens_of, 4 * cfg.batch_size,
                                    cfg.max_source_tokens, cfg.length_penalty, EVAL_TEMPLATE)
        cat = read_catalog(cfg.catalog) if cfg.catalog is not None else None
        if cfg.text_prior is not None:
            text = dict(zip(cat.item_ids, cat.texts))
            self.similarity = TextSimilarity([text.get(i, "") for i in every])
            self.barred = sorted(set(range(len(every))) - set(rows))
        self.new_mode = new_item_mode(cfg, cat, every, keep) if cfg.new_items is not None else None

    def rank(self, histories: list[tuple[str, list[str]]]) -> list[str]:
        """One JSON line per (user, items) history, in order."""
        cfg = self.cfg
        prompts = [render_prompt([self.id_of[i] for i in items], None, EVAL_TEMPLATE) for _, items in histories]
        exclude = [set(items) for _, items in histories] if cfg.exclude_history else None
        ranked = self.corrected(ranked_items(self.model, self.tok, prompts, self.trie, self.item_ids, cfg.beams,
                                             cfg.batch_size, cfg.max_source_tokens, cfg.length_penalty, exclude))
        if cfg.repeat_bias is not None:
            scored = self.scored(prompts, [items for _, items in histories])
            ranked = (merge_repeats(b, h, cfg.repeat_bias) for b, h in zip(ranked, scored))
        if cfg.text_prior is not None:
            ranked = self.with_text_prior(prompts, [items for _, items in histories], list(ranked))
        if self.new_mode is not None:
            ranked = self.new_mode.merged([items for _, items in histories], list(ranked), cfg.k)
        lines = []
        for (user, _), kept in zip(histories, ranked):
            kept = kept[: cfg.k]
            line = {"user": user, "items": [i for i, _ in kept], "scores": [round(v, 6) for _, v in kept]}
            if cfg.with_ids:
                line["ids"] = [self.id_of[i] for i, _ in kept]
            lines.append(json.dumps(line) + "\n")
        return lines

    def corrected(self, lists):
        """Scores with the ID prior correction (``recommender.id_prior``) at ``id_prior`` (off: unchanged)."""
        return corrected_all(lists, self.null, self.cfg.id_prior) if self.cfg.id_prior else lists

    def scored(self, prompts: list[str], items: list[list[str]]):
        """Per prompt, the model's (corrected) score of each of its items that may be recommended."""
        cfg = self.cfg
        return self.corrected(scored_histories(self.model, self.tok, prompts, items, self.tokens_of, cfg.batch_size,
                                               cfg.max_source_tokens, cfg.length_penalty))

    def with_text_prior(self, prompts: list[str], histories: list[list[str]], ranked: list) -> list:
        """The beams with the text prior (``recommender.text_prior``) at ``text_prior``."""
        cfg = self.cfg
        rows, similar = prior_candidates(self.similarity, [[self.row[i] for i in h] for h in histories],
                                         [[self.row[i] for i, _ in b] for b in ranked], cfg.text_candidates,
                                         barred=self.barred)
        scored = self.scored(prompts, [[self.every[r] for r in top] for top in rows])
        return [merge_text_prior(b, c, {self.every[r]: v for r, v in s.items()}, cfg.text_prior)
                for b, c, s in zip(ranked, scored, similar)]


@dataclass
class NewItemMode:
    """The new-item mode as ``recommend`` applies it (``recommender.modes``): the new items, P(new), and what each
    rank of the model's list and of the new items' own list is worth."""

    catalog: Catalog
    similarity: TextSimilarity  # the catalog's TF-IDF, built once: ``merged`` runs for every batch
    items: set[str]
    p_new: float
    known_rates: list[float]
    new_rates: list[float]

    def merged(self, histories: list[list[str]], ranked: list, k: int) -> list:
        """Each ranking with the new items, ranked among themselves by text similarity to its history, mixed in."""
        among = text_among(self.catalog, histories, self.items, NEW_MODE_DEPTH, self.similarity)
        return [merge_new_item_mode([i for i, _ in b], n, self.p_new, self.known_rates, self.new_rates, k)
                for b, n in zip(ranked, among)]


def new_item_mode(cfg: RecommendConfig, catalog: Catalog, every: list[str], keep: set[str] | None) -> NewItemMode:
    """The mode for ``cfg.new_items`` (within the candidates, if any): ours' worth per rank from the model's
    validation metrics, the new list's measured on the catalog's validation with known items drawn as new."""
    new = read_candidates(cfg.new_items, set(every))
    if keep is not None:
        new &= keep
    missing = sorted(new - set(catalog.item_ids))
    if missing:
        raise DataError(cfg.catalog, None, f"{len(missing)} new items have no text here (first: {missing[0]!r}): "
                                           "give the catalog add-items extended (add-items --catalog)")
    metrics = Path(cfg.valid_metrics or Path(cfg.model) / "eval" / "metrics_valid.json")
    rates = json.loads(require_file(metrics).read_text()).get("explore_rates")
    if not rates:
        raise DataError(metrics, None, "no explore_rates: give the metrics of a validation run of this model "
                                       "(idgenrec eval --split valid records them)")
    p_new = new_item_share(len(new), len(every))
    similarity = TextSimilarity(catalog.texts)
    worth = new_mode_worth(catalog, p_new, seed=0, max_history=prompt_history(cfg.model, cfg.max_history),
                           items=[i for i in catalog.item_ids if i not in new], similarity=similarity)
    log.info("new-item mode: %d new items, P(new) %.3f; its list's hit rate at rank 1 %.4f (%d validation users "
             "whose target is one of %d known items drawn as new); ours' %.4f", len(new), p_new, worth["rates"][0],
             worth["users"], worth["pseudo_new_items"], rates[0])
    return NewItemMode(catalog, similarity, new, p_new, list(rates), worth["rates"])


def run_recommend(cfg: RecommendConfig, stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> dict:
    """Recommend for every history; returns counts (users written, problems skipped)."""
    if cfg.model is None or cfg.ids is None:
        raise ValueError("recommend needs model and ids")
    problems = Problems(skip_bad=cfg.skip_bad)
    source = "<stdin>" if cfg.histories in (None, Path("-")) else str(cfg.histories)
    if cfg.out is not None:
        require_writable_file(cfg.out)  # before any work, not after it
    known = set(read_id_table(Path(cfg.ids) / ITEM_TABLE)["item_id"])
    max_history = prompt_history(cfg.model, cfg.max_history)
    if source != "<stdin>":  # a file is checked whole first: a bad line stops the job before any output
        with _lines(cfg.histories, stdin) as lines:
            for _ in read_histories(lines, source, known, Problems(skip_bad=cfg.skip_bad), max_history):
                pass
    with _lines(cfg.histories, stdin) as lines:
        histories = read_histories(lines, source, known, problems, max_history)
        if cfg.actors > 0:
            written = _with_actors(cfg, list(histories))
        else:
            ranker = Ranker(cfg, str(resolve_device(cfg.device)))
            written = 0
            with _sink(cfg.out, stdout) as out:
                for batch in iter(lambda: list(islice(histories, cfg.batch_size)), []):  # streamed, batch by batch
                    out.writelines(ranker.rank(batch))
                    out.flush()
                    written += len(batch)
    skipped = problems.summary()
    if skipped:
        log.warning("skipped %s (first: %s)", skipped, next(iter(problems.examples.values())))
    result = {"users": written, "skipped": skipped}
    if cfg.out is not None:
        write_record(cfg, result)
    return result


def write_record(cfg: RecommendConfig, result: dict) -> None:
    """``<out>.record.json`` beside the output: which model, ID table and settings made it (paths and content
    fingerprints), and what was written and skipped."""
    inputs = {name: {"path": str(getattr(cfg, name)), "fingerprint": content_digest(getattr(cfg, name), ["work"])}
              for name in ("histories", *PATH_INPUTS) if getattr(cfg, name) is not None}
    write_json(Path(f"{cfg.out}.record.json"), {"output": str(cfg.out), "inputs": inputs,
                                                "config": config_to_dict(cfg), **result,
                                                "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


def _with_actors(cfg: RecommendConfig, histories: list[tuple[str, list[str]]]) -> int:
    """Chunks of histories ranked by Ray actors; each finished chunk is kept in ``<out>.parts/`` (atomically), a
    rerun skips those, and the output is their concatenation in input order."""
    import ray

    from cluster.ray_session import gpu_share, start_ray, stop_ray

    parts = Path(f"{cfg.out}.parts")
    plan = plan_hash(cfg, histories)
    if (parts / "plan.txt").exists() and (parts / "plan.txt").read_text() != plan:
        log.warning("%s holds chunks of another input or config: starting over", parts)
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    write_text(parts / "plan.txt", plan)
    chunks = [histories[i:i + cfg.chunk] for i in range(0, len(histories), cfg.chunk)]
    todo = [n for n in range(len(chunks)) if not (parts / f"{n:06d}.jsonl").exists()]
    log.info("%d histories in %d chunks, %d to rank with %d actors", len(histories), len(chunks), len(todo),
             cfg.actors)
    started = start_ray(cfg.address, cfg.actors) if todo else False
    try:
        if todo:
            gpus, device = gpu_share(cfg.device, ray.cluster_resources().get("GPU", 0), cfg.actors)
            actor = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=3, max_task_retries=3)(_RankerActor)
            actors = [actor.remote(cfg, device) for _ in range(min(cfg.actors, len(todo)))]
            pending = {actors[k % len(actors)].rank.remote(chunks[n]): n for k, n in enumerate(todo)}
            for _ in progress(range(len(pending)), desc="recommend", unit="chunk"):
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                n = pending.pop(ready)
                write_text(parts / f"{n:06d}.jsonl", "".join(ray.get(ready)))
    finally:
        if started:
            stop_ray()
    with atomic_path(cfg.out) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for n in range(len(chunks)):
            out.write((parts / f"{n:06d}.jsonl").read_text(encoding="utf-8"))
    shutil.rmtree(parts)
    return len(histories)


def plan_hash(cfg: RecommendConfig, histories: list[tuple[str, list[str]]]) -> str:
    """What kept chunks were made from: the histories, the content of the model, ID table, catalog and item lists,
    and every setting that changes a result (a model retrained in place starts over)."""
    same = {k: (content_digest(v, skip=["work"]) if k in PATH_INPUTS else str(v))
            for k, v in vars(cfg).items()
            if k not in ("actors", "address", "device", "histories", "out", "chunk")}
    return settings_digest([same, cfg.chunk, histories])


class _RankerActor:
    def __init__(self, cfg: RecommendConfig, device: str):
        import torch

        torch.set_num_threads(1)  # one CPU per actor
        self.ranker = Ranker(cfg, device)

    def rank(self, histories: list[tuple[str, list[str]]]) -> list[str]:
        return self.ranker.rank(histories)


@contextlib.contextmanager
def _lines(path: Path | None, stdin: IO[str] | None) -> Iterator[Iterable[str]]:
    """The histories' lines: the file, or standard input."""
    if path in (None, Path("-")):
        stream = stdin or sys.stdin
        yield getattr(stream, "buffer", stream)  # bytes where there are any, so a bad byte names its line
        return
    with open(require_file(path), "rb") as fh:
        yield fh


@contextlib.contextmanager
def _sink(path: Path | None, stdout: IO[str] | None) -> Iterator[IO[str]]:
    """Standard output (streamed), or a file written whole or not at all (temp file, then rename)."""
    if path is None:
        yield stdout or sys.stdout
        return
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        yield fh
