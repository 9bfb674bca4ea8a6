"""``idgenrec eval``: leave-one-out evaluation of a recommender over all items, by trie-constrained beam search.

Validation and test run the same code. Each eligible user (3+ items) is evaluated exactly once: no sampler pads
the set (the published code's distributed sampler counted some users twice).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from catalog.id_table import item_id_tokens, user_id_texts
from catalog.split import samples, skipped_users
from catalog.store import read_catalog
from eval.baselines import popularity_metrics
from eval.metrics import hit_rates_by_rank, leave_one_out_metrics, ranking_report
from eval.runs import write_eval
from infra.device import resolve_device
from infra.progress import progress
from recommender.decode import ranked_items
from recommender.id_prior import corrected_all, null_scores
from recommender.prompts import EVAL_TEMPLATE, prompt_history, render_prompt
from catalog.similarity import TextSimilarity
from recommender.repeat_mode import merge_repeat_mode, repeat_probability, repeat_profile
from recommender.repeats import Ranked, merge_repeats, scored_histories
from recommender.text_prior import merge_text_prior, prior_candidates
from recommender.trie import Trie
from seq2seq.model import load_model_and_tokenizer

log = logging.getLogger("idgenrec.eval")


@dataclass
class EvalConfig:
    model: Path | None = None
    catalog: Path | None = None
    ids: Path | None = None
    out: Path | None = None
    split: str = "test"
    beams: int = 20
    length_penalty: float = 1.0
    batch_size: int = 64
    max_history: int = 0
    max_source_tokens: int = 512
    user_ids: bool = False
    exclude_history: bool = False
    repeat_bias: float | None = None
    repeat_bias_grid: list[float] = field(default_factory=list)
    text_prior: float | None = None
    text_prior_grid: list[float] = field(default_factory=list)
    text_candidates: int = 20
    id_prior: float | None = None
    id_prior_grid: list[float] = field(default_factory=list)
    explore_rates: list[float] = field(default_factory=list)
    template: int = EVAL_TEMPLATE
    max_users: int = 0
    device: str = "auto"

    def check(self) -> None:
        if self.split not in ("valid", "test"):
            raise ValueError(f"split must be valid or test, got {self.split!r}")
        if self.beams < 10:
            raise ValueError("beams must be >= 10 (the largest k of HR@10 / NDCG@10)")
        if self.repeat_bias_grid and (self.split != "valid" or self.repeat_bias is not None):
            raise ValueError("repeat_bias_grid chooses a repeat bias on the valid split (test takes the chosen "
                             "repeat_bias)")
        if self.text_prior_grid and (self.split != "valid" or self.text_prior is not None):
            raise ValueError("text_prior_grid chooses a text prior on the valid split (test takes the chosen "
                             "text_prior)")
        if self.id_prior_grid and (self.split != "valid" or self.id_prior is not None):
            raise ValueError("id_prior_grid chooses an ID prior correction on the valid split (test takes the chosen "
                             "id_prior)")
        if self.exclude_history and (self.repeat_bias is not None or self.repeat_bias_grid):
            raise ValueError("exclude_history drops the history items that repeat_bias would rank: pick one")
        if self.explore_rates and (self.exclude_history or self.repeat_bias is not None or self.repeat_bias_grid):
            raise ValueError("explore_rates turns on the repeat mode, which ranks the history items itself: not with "
                             "exclude_history, repeat_bias or repeat_bias_grid")


HELP = {"repeat_bias": "also rank the user's history items, at the model's score of their IDs + this bias "
                       "(the one validation chose, in the training run's summary.json); default: off",
        "repeat_bias_grid": "on the valid split: choose repeat_bias among these values and off, by NDCG@10",
        "text_prior": "add this weight x the text similarity of each item to the user's last items to the beam "
                      "scores, the most similar items joining the beams (recommender.text_prior); default: off",
        "text_prior_grid": "on the valid split: choose text_prior among these values and off, by NDCG@10",
        "text_candidates": "with a text prior: the most text-similar items scored by the model and merged",
        "id_prior": "subtract this beta x the model's score of each ID after a prompt with no history from its score "
                    "(recommender.id_prior: 1 ranks by how much the history raises an ID); default: off",
        "id_prior_grid": "on the valid split: choose id_prior among these values and off, by NDCG@10 (the repeat "
                         "bias and text prior chosen again for each)",
        "explore_rates": "the repeat mode (recommender.repeat_mode): the hit rate at each rank of the ranking, as "
                         "a valid run records it (explore_rates in its metrics); the user's history items join the "
                         "ranking by a repeat probability read from the histories (0 where they never repeat: "
                         "the ranking is unchanged); default: off",
        "template": "which of the 10 prompt templates the evaluation prompts use (0: the evaluation's own)",
        "model": "recommender directory (model + tokenizer)", "catalog": "catalog directory",
        "ids": "ID directory (item_ids.parquet, user_ids.parquet) from idgenrec ids", "out": "output directory",
        "split": "valid or test", "beams": "beam width (>= 10)",
        "length_penalty": "beam score = sum of token log-probabilities / length ** this (0: the ID's probability)",
        "user_ids": "put user IDs in the prompts",
        "exclude_history": "drop items already in the user's history from the ranking (the paper does not)",
        "max_history": "history items in a prompt (0: as the model was trained, recorded in its idgenrec.json; "
                       "else 20)",
        "max_users": "evaluate only the first N eligible users (0 = all), for quick looks; popularity is scored on "
                     "the same users, and the metrics record the evaluation as partial",
        "device": "auto (a GPU when present), cpu or cuda"}


def evaluate(cfg: EvalConfig) -> dict:
    if None in (cfg.model, cfg.catalog, cfg.ids, cfg.out):
        raise ValueError("eval needs model, catalog, ids and out")
    cat = read_catalog(cfg.catalog)
    device = resolve_device(cfg.device)
    model, tok = load_model_and_tokenizer(cfg.model)
    model = model.to(device).eval()
    # the trie speaks the recommender's vocabulary, whatever tokenizer wrote the ID table
    texts, tokens = item_id_tokens(cfg.ids, cat.item_ids, tok)
    id_of = dict(zip(cat.item_ids, texts))
    users = user_id_texts(cfg.ids) if cfg.user_ids else {}
    trie = Trie.build(tokens, tok.eos_token_id, len(tok)).to(device)
    max_history = prompt_history(cfg.model, cfg.max_history)
    eligible = list(samples(cat.sequences, cfg.split, max_history))
    todo = eligible[: cfg.max_users] if cfg.max_users > 0 else eligible
    prompts = [render_prompt([id_of[i] for i in s.history], users.get((cat.users[s.user], s.position)),
                             cfg.template) for s in todo]
    t0 = time.time()
    exclude = [set(s.history) for s in todo] if cfg.exclude_history else None
    beams = list(progress(ranked_items(model, tok, prompts, trie, cat.item_ids, cfg.beams, cfg.batch_size,
                                       cfg.max_source_tokens, cfg.length_penalty, exclude),
                          total=len(todo), desc=f"eval {cfg.split}", unit="user"))
    targets = [s.target for s in todo]
    scoring = Scoring(model, tok, prompts, dict(zip(cat.item_ids, tokens)), cfg)
    beams, levers = with_id_prior(cfg, scoring, beams, cat, todo, targets)
    if cfg.split == "valid":  # what each rank of this ranking is worth: a later run's repeat mode reads it
        levers["explore_rates"] = hit_rates_by_rank([[i for i, _ in b] for b in beams], targets, cfg.beams)
    beams, mode = with_repeat_mode(cfg, beams, [s.history for s in todo], targets)
    levers |= mode
    ranked = [[i for i, _ in kept] for kept in beams]
    scores = [[v for _, v in kept] for kept in beams]
    seconds = time.time() - t0
    metrics = {**ranking_report(ranked, targets, len(cat.item_ids)),
               "split": cfg.split, "beams": cfg.beams, "max_history": max_history,
               "users_per_s": len(todo) / max(seconds, 1e-9), "seconds": round(seconds, 2),
               "skipped_users_fewer_than_3_items": skipped_users(cat.sequences),
               "partial": len(todo) < len(eligible),
               "popularity": popularity_metrics(cat.sequences, cfg.split, max_users=cfg.max_users),
               "catalog": str(cfg.catalog),
               "model": str(cfg.model), **levers}
    write_eval(cfg.out, cfg.split, metrics, {"user_id": [cat.users[s.user] for s in todo], "target": targets,
                                             "topk": ranked, "scores": scores})
    log.info("%s: HR@5 %.4f HR@10 %.4f NDCG@5 %.4f NDCG@10 %.4f over %d users (popularity HR@10 %.4f); "
             "the top-10 lists use %.1f%% of the items", cfg.split, metrics["HR@5"], metrics["HR@10"],
             metrics["NDCG@5"], metrics["NDCG@10"], metrics["users"], metrics["popularity"]["HR@10"],
             100 * metrics["coverage@10"])
    return metrics


@dataclass
class Scoring:
    """What scores given items after each prompt (the model's beam score of their IDs): the repeat bias scores
    the history, the text prior its candidates."""

    model: object
    tok: object
    prompts: list[str]
    tokens_of: dict
    cfg: EvalConfig
    null: dict = field(default_factory=dict)  # the ID prior's null scores, when one is applied
    beta: float | None = None  # the ID prior correction applied to every score handed out
    memo: dict = field(default_factory=dict)  # what each lever computed once, reused for every beta tried

    def cached(self, key: str, compute):
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    def score(self, items: list, desc: str) -> list[Ranked]:
        c = self.cfg
        raw = self.cached(desc, lambda: list(progress(
            scored_histories(self.model, self.tok, self.prompts, items, self.tokens_of, c.batch_size,
                             c.max_source_tokens, c.length_penalty),
            total=len(items), desc=f"score {c.split} {desc}", unit="user")))
        return list(corrected_all(raw, self.null, self.beta))


def with_id_prior(cfg: EvalConfig, scoring: Scoring, beams: list[Ranked], cat, todo, targets: list
                  ) -> tuple[list[Ranked], dict]:
    """The repeat bias and the text prior (``with_levers``) on scores corrected by the ID prior
    (``recommender.id_prior``) at the chosen (or given) beta, and the record (ours without it kept as its own row)."""
    if not cfg.id_prior_grid and not cfg.id_prior:
        return with_levers(cfg, scoring, beams, cat, todo, targets)
    scoring.null = null_scores(scoring.model, scoring.tok, cat.item_ids, scoring.tokens_of, 4 * cfg.batch_size,
                               cfg.max_source_tokens, cfg.length_penalty, cfg.template)
    tried: dict = {}

    def at(beta: float | None) -> tuple[list[Ranked], dict]:
        if beta not in tried:
            scoring.beta = beta
            tried[beta] = with_levers(cfg, scoring, list(corrected_all(beams, scoring.null, beta)), cat, todo,
                                      targets)
        return tried[beta]

    beta, record = cfg.id_prior, {}
    if cfg.id_prior_grid:
        beta, record["id_prior_ndcg10"] = choose_by_ndcg(at(None)[0], targets, cfg.id_prior_grid,
                                                         lambda b: at(b)[0])
    record["id_prior"] = beta
    ranked, levers = at(beta)
    if beta is not None:
        record["without_id_prior"] = leave_one_out_metrics([[i for i, _ in b] for b in at(None)[0]], targets)
    return ranked, {**levers, **record}


def with_levers(cfg: EvalConfig, scoring: Scoring, beams: list[Ranked], cat, todo, targets: list
                ) -> tuple[list[Ranked], dict]:
    """The beams with the repeat bias, then the text prior (each chosen or given), and their records."""
    beams, repeats = with_repeats(cfg, scoring, beams, [s.history for s in todo], targets)
    beams, prior = with_text_prior(cfg, scoring, beams, cat, todo, targets)
    return beams, {**repeats, **prior}


def with_repeats(cfg: EvalConfig, scoring: Scoring, beams: list[Ranked], histories: list, targets: list
                 ) -> tuple[list[Ranked], dict]:
    """The beams with the user's history items merged at the chosen (or given) repeat bias, and the record."""
    if not cfg.repeat_bias_grid and cfg.repeat_bias is None:
        return beams, {}
    history = scoring.score(histories, "histories")
    bias, record = cfg.repeat_bias, {}
    if cfg.repeat_bias_grid:
        bias, record["repeat_bias_ndcg10"] = choose_repeat_bias(beams, history, targets, cfg.repeat_bias_grid)
    record["repeat_bias"] = bias
    if bias is None:
        return beams, record
    record["without_repeat_bias"] = leave_one_out_metrics([[i for i, _ in b] for b in beams], targets)  # own row
    return [merge_repeats(b, h, bias) for b, h in zip(beams, history)], record


def with_repeat_mode(cfg: EvalConfig, beams: list[Ranked], histories: list, targets: list
                     ) -> tuple[list[Ranked], dict]:
    """The ranking with the repeat mode (``recommender.repeat_mode``) where ``cfg.explore_rates`` is given, the
    repeat profile read from these histories, and the record (ours without it kept as its own row)."""
    if not cfg.explore_rates:
        return beams, {}
    profile = repeat_profile(histories)
    p = [repeat_probability(profile, h) for h in histories]
    record = {"repeat_mode": {"rate": profile.rate, "prior": None if math.isinf(profile.prior) else profile.prior,
                              "mean_p_repeat": sum(p) / max(len(p), 1)}}
    if profile.rate == 0.0:
        return beams, record
    record["without_repeat_mode"] = leave_one_out_metrics([[i for i, _ in b] for b in beams], targets)
    return [merge_repeat_mode(b, h, pu, profile.lags, cfg.explore_rates)
            for b, h, pu in zip(beams, histories, p)], record


def with_text_prior(cfg: EvalConfig, scoring: Scoring, beams: list[Ranked], cat, todo, targets: list
                    ) -> tuple[list[Ranked], dict]:
    """The beams with the text-similarity prior (``recommender.text_prior``) at the chosen (or given) weight, and
    the record (ours without the prior kept as its own row)."""
    if not cfg.text_prior_grid and cfg.text_prior is None:
        return beams, {}
    row = cat.item_index()
    histories = [[row[i] for i in s.history] for s in todo]
    # the beams' items are the same whatever the ID prior's beta (it only reorders them): computed once
    rows, similar = scoring.cached("text prior candidates", lambda: prior_candidates(
        TextSimilarity(cat.texts), histories, [[row[i] for i, _ in b] for b in beams], cfg.text_candidates))
    candidates = scoring.score([[cat.item_ids[r] for r in top] for top in rows], "text candidates")
    sim = [{cat.item_ids[r]: v for r, v in d.items()} for d in similar]
    weight, record = cfg.text_prior, {}
    if cfg.text_prior_grid:
        weight, record["text_prior_ndcg10"] = choose_by_ndcg(
            beams, targets, cfg.text_prior_grid,
            lambda w: [merge_text_prior(b, c, s, w) for b, c, s in zip(beams, candidates, sim)])
    record["text_prior"] = weight
    if weight is None:
        return beams, record
    record["without_text_prior"] = leave_one_out_metrics([[i for i, _ in b] for b in beams], targets)
    return [merge_text_prior(b, c, s, weight) for b, c, s in zip(beams, candidates, sim)], record


def choose_by_ndcg(beams: list[Ranked], targets: list, grid: list[float], merged
                   ) -> tuple[float | None, dict[str, float]]:
    """The value of ``grid`` (None: off) whose ``merged(value)`` rankings have the best NDCG@10 over these users,
    and NDCG@10 of every value; off wins ties, then the smaller value."""
    tried = {"off": leave_one_out_metrics([[i for i, _ in b] for b in beams], targets)["NDCG@10"]}
    best, best_ndcg = None, tried["off"]
    for value in sorted(grid):
        tried[str(value)] = leave_one_out_metrics([[i for i, _ in r] for r in merged(value)], targets)["NDCG@10"]
        if tried[str(value)] > best_ndcg:
            best, best_ndcg = value, tried[str(value)]
    return best, tried


def choose_repeat_bias(beams: list[Ranked], history: list[Ranked], targets: list, grid: list[float]
                       ) -> tuple[float | None, dict[str, float]]:
    """The repeat bias (None: off) with the best NDCG@10 over these users, and NDCG@10 of every candidate."""
    return choose_by_ndcg(beams, targets, grid, lambda bias: [merge_repeats(b, h, bias)
                                                              for b, h in zip(beams, history)])
