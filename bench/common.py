"""Helpers shared by the benchmarks: locating real data, and a generator to measure with."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

SHARED_DATA = Path(os.environ.get("IDGENREC_SHARED_DATA", REPO.parent / "shared" / "data"))


def metric_cells(m: dict, fmt: str = "8.4f") -> str:
    """HR@5, HR@10, NDCG@5, NDCG@10 of ``m`` (eval.report's order) as fixed-width table cells."""
    from eval.metrics import METRICS

    return " ".join(f"{m[k]:{fmt}}" for k in METRICS)


def prepared(name: str, work: Path):
    """The real dataset ``name`` from ../shared/data as a catalog under ``work`` (prepared once)."""
    from catalog.prepare import PrepareConfig, prepare
    from catalog.store import read_catalog

    out = work / "catalog" / name
    if not (out / "stats.json").exists():
        src = SHARED_DATA / name
        if not src.exists():
            raise SystemExit(f"{src} not found: set IDGENREC_SHARED_DATA to the folder holding the datasets")
        prepare(PrepareConfig(data=src, out=out, domain=name))
    return read_catalog(out)


def generator_dir(texts: list[str], work: Path, size: str = "mini", vocab: int = 8000) -> Path:
    """A randomly initialized generator of ``size`` with a tokenizer trained on ``texts`` (made once)."""
    from catalog.tokenizer import build_tokenizer, load_tokenizer
    from seq2seq.model import build_model, model_config, save_model

    out = work / f"generator_{size}"
    if not (out / "config.json").exists():
        build_tokenizer(texts, work / "tokenizer", vocab_size=vocab)
        tok = load_tokenizer(work / "tokenizer")
        save_model(build_model(model_config(size), tok), tok, out)
    return out


def published_ids(cat) -> list[str]:
    """Beauty's published initial IDs (``idgenrec_phase0_id``, real text), made unique by numbering repeats."""
    from idgen.algorithm1 import normalize_id

    ids, seen = [], set()
    for item, fields in zip(cat.item_ids, cat.fields):
        base = normalize_id(fields.get("idgenrec_phase0_id") or item)
        text, n = base, 1
        while text in seen:
            n += 1
            text = f"{base} {n}"
        seen.add(text)
        ids.append(text)
    return ids


def beauty_published(work: Path):
    """(catalog, published IDs, tokenizer trained on their text) of real Beauty: the decoding benches' setting."""
    from catalog.tokenizer import build_tokenizer, load_tokenizer

    cat = prepared("Beauty", work)
    ids = published_ids(cat)
    tok_dir = work / "tokenizer_beauty"
    if not (tok_dir / "tokenizer.json").exists():
        build_tokenizer(cat.texts + ids, tok_dir, vocab_size=8000)
    return cat, ids, load_tokenizer(tok_dir)


def stock_generate_kwargs(beams: int, max_depth: int) -> dict:
    """transformers ``generate`` arguments of the stock approach: plain beam search, all beams returned."""
    return dict(num_beams=beams, num_return_sequences=beams, max_new_tokens=max_depth, early_stopping=True,
                do_sample=False)


def stock_rankings(sequences, users: int, beams: int, tokens: list[list[int]], eos: int) -> list[list[int]]:
    """Per user, the item indices in the order ``generate`` returned them (-2 where a sequence is no item's ID).

    ``tokens[i]`` are item i's ID tokens; each returned sequence starts with the decoder start token."""
    lookup = {tuple(t): i for i, t in enumerate(tokens)}
    ranked = []
    for user in sequences.view(users, beams, -1).tolist():
        items = []
        for s in user:
            s = s[1:]
            items.append(lookup.get(tuple(s[: s.index(eos)] if eos in s else s), -2))
        ranked.append(items)
    return ranked


def reset_peak(device) -> None:
    """Start a fresh peak-memory count on a GPU (nothing to do on a CPU)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_mb(device) -> float | None:
    """Peak GPU memory since the last reset, in MiB (None on a CPU)."""
    import torch

    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)


class Phases:
    """A benchmark's results so far, rewritten to ``path`` (JSON) after each phase, so a run cut off by a time limit
    still reports; a failed phase is recorded with its traceback, not fatal."""

    def __init__(self, path: Path, device=None):
        self.path, self.device, self.results, self.t0 = path, device, {"phases": {}, "errors": {}}, time.time()

    def phase(self, name: str, fn) -> None:
        import logging
        import traceback

        logging.getLogger("idgenrec.bench").info("== %s", name)
        if self.device is not None:
            reset_peak(self.device)
        t = time.time()
        try:
            self.results[name] = fn()
        except Exception as e:  # keep going: the other phases still measure something
            logging.getLogger("idgenrec.bench").error("%s failed: %s", name, e)
            self.results["errors"][name] = traceback.format_exc()[-3000:]
        self.results["phases"][name] = round(time.time() - t, 2)
        self.save()

    def save(self) -> None:
        from infra.atomic import write_json

        self.results["wall_s"] = round(time.time() - self.t0, 1)
        write_json(self.path, self.results)


def _export_eval(run: Path, result: dict, split: str, folder: str, settings: list, **levers) -> dict:
    """The selected recommender of a finished standard run (``run``: its folder; ``result``: its standard.json)
    evaluated on ``split`` with ``levers`` into ``run/folder``, cached on the content of the model and the catalog
    and on ``settings``."""
    from eval.runs import TrainingRun, read_eval
    from infra.config import build_config
    from infra.fingerprint import content_digest, settings_digest, step_done, write_stamp
    from pretrain.config import TrainConfig
    from pretrain.selection import evaluate_export

    out, best = run / folder, TrainingRun(run / "recommender").best
    tcfg = build_config(TrainConfig, result["train_config"])
    users = tcfg.valid_max_users if split == "valid" else tcfg.test_max_users
    # (the model's own files: best/eval holds evaluations with their timings, which differ between identical models)
    inputs = {"model": content_digest(best, skip=["eval"]), "catalog": content_digest(run / "catalog"),
              # the users and beams after the first two settings: the order the digests of finished runs used
              "settings": settings_digest(settings[:2] + [users, tcfg.eval_beams] + settings[2:])}
    if not step_done(folder.replace("_", " "), out, inputs, read_eval(out, split) is not None):
        evaluate_export(best, tcfg, split, out=out, **levers)
        write_stamp(out, inputs)
    return read_eval(out, split)


def repeat_bias_chosen(result: dict) -> float | None:
    """The repeat bias a finished standard run chose on its validation (None: off)."""
    return (result["ours"].get("repeat_bias") or {}).get("chosen")


def text_prior_on_validation(run: Path, result: dict, grid: list[float], id_grid: list[float] = ()) -> dict:
    """The text prior's weight (``recommender.text_prior``) chosen on the validation of a finished standard run
    (``run``: its folder; ``result``: its standard.json), with the repeat bias that run chose: the selected
    recommender re-ranked with each weight of ``grid`` (and, with ``id_grid``, each ID prior correction of
    ``recommender.id_prior``, the weight chosen again at each). Cached in ``run/text_prior`` (with ``id_grid``:
    ``run/text_prior_id_prior``) on the content of the model and the catalog; the evaluated (held-out, new-item)
    data is never looked at."""
    if not grid:
        return {"chosen": None}
    bias = repeat_bias_chosen(result)
    # with the ID prior grid in its own folder: a run that also asks without it (bench/quality.py's text prior row,
    # beside bench/new_items.py's) would otherwise redo the other's evaluation every time
    folder = "text_prior_id_prior" if id_grid else "text_prior"
    valid = _export_eval(run, result, "valid", folder, [grid, bias] + ([list(id_grid)] if id_grid else []),
                         repeat_bias=bias, text_prior_grid=grid, id_prior_grid=list(id_grid))
    return {"chosen": valid["text_prior"], "valid_ndcg10": valid["text_prior_ndcg10"], "repeat_bias": bias,
            "id_prior": valid.get("id_prior"), "id_prior_valid_ndcg10": valid.get("id_prior_ndcg10"),
            "explore_rates": valid.get("explore_rates")}


def text_prior_on_test(run: Path, result: dict, grid: list[float]) -> dict:
    """Ours + text prior (a hybrid: its own row beside ours) on the test users of a finished standard run, at the
    weight chosen on its validation (:func:`text_prior_on_validation`) with the run's repeat bias; no ``test`` when
    validation keeps the prior off. Cached in ``run/text_prior_test`` on the model, catalog and weight."""
    from eval.metrics import METRICS

    prior = text_prior_on_validation(run, result, grid)
    if prior["chosen"] is None:
        return prior
    test = _export_eval(run, result, "test", "text_prior_test", [prior["chosen"], prior["repeat_bias"]],
                        repeat_bias=prior["repeat_bias"], text_prior=prior["chosen"])
    return prior | {"test": {k: test[k] for k in ("users", *METRICS, "coverage@10")}}


def markov_hybrid(run: Path, grid: list[float]) -> dict:
    """Ours + the Markov chain (``eval.hybrid``: a hybrid, its own row beside ours) on a finished standard run
    (``run``: its folder): the selected recommender's own validation and test rankings (at the repeat bias it chose,
    ``best/eval``), merged with the Markov chain's on the same users; the weight chosen on validation, test scored
    once at it."""
    from catalog.split import samples
    from catalog.store import read_catalog
    from eval.baselines import markov_rankings
    from eval.hybrid import DEPTH, choose_weight, merged_rankings
    from eval.metrics import METRICS, ranking_report
    from eval.runs import TrainingRun, read_topk

    cat, best = read_catalog(run / "catalog"), TrainingRun(run / "recommender").best
    lists = {}
    for split in ("valid", "test"):
        ours = read_topk(best / "eval", split)
        markov = markov_rankings(cat.sequences, split, DEPTH)[:len(ours["target"])]  # evaluation's users, in order
        if [s.target for s in samples(cat.sequences, split)][:len(markov)] != ours["target"]:
            raise ValueError(f"{best / 'eval'}: its {split} users are not the split's first users in order")
        lists[split] = (ours["topk"], markov, ours["target"])
    chosen = choose_weight(*lists["valid"], grid=grid)
    ours, markov, targets = lists["test"]
    test = ranking_report(merged_rankings(ours, markov, chosen["weight"], chosen["ours_worth"],
                                          chosen["other_worth"]), targets, len(cat.item_ids))
    return {"chosen": chosen["weight"], "valid_ndcg10": chosen["valid_ndcg10"],
            "test": {k: test[k] for k in ("users", *METRICS, "se", "coverage@10")}}


def bench_config(cls: type, help_texts: dict, doc: str, argv: list[str] | None):
    """A benchmark's config from its flags (every field a flag, ``--config`` YAML), with logging set up."""
    import argparse

    from infra.config import add_config_args, config_from_args
    from infra.logs import setup_logging

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_args(ap, cls, help_texts)
    cfg = config_from_args(cls, ap.parse_args(argv))
    setup_logging()
    return cfg


def recorded_run(out: Path, results_file: str, device: str) -> Phases:
    """``out/results_file`` as a :class:`Phases` record, starting with the machine it ran on."""
    import platform

    out.mkdir(parents=True, exist_ok=True)
    run = Phases(out / results_file)
    run.results["env"] = {"python": platform.python_version(), "device": device, "date": time.strftime("%Y-%m-%d"),
                          "machine": f"{platform.machine()}, {os.cpu_count()} cores", **numeric_stack()}
    return run


def numeric_stack() -> dict:
    """What a figure's floating-point path depends on beyond the code: CPU kernels differ by instruction set and
    thread count (a T5 backward pass gave other gradients at 1 thread than at 2), and the libraries by version; a
    seed reproduces to the last digit only where these match."""
    from importlib.metadata import version

    import torch

    return {"torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "versions": {p: version(p) for p in ("torch", "transformers", "sentencepiece", "numpy")}}
