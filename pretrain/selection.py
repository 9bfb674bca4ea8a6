"""Model selection on validation, never on test: each epoch's validation, the best epoch kept in ``best/``, the
repeat bias chosen on validation, and the one test of the selected model."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from catalog.split import LEGACY_MAX_HISTORY
from eval.metrics import METRICS
from pretrain.config import TrainConfig
from seq2seq.schedule import run_done

log = logging.getLogger("idgenrec.train")


def check_lineage(cfg: TrainConfig) -> None:
    """Validation must use the IDs the shards were built from (a model is never selected on IDs it did not learn),
    and the shards' prompts the history order evaluation writes."""
    from catalog.id_table import ids_hash
    from pretrain.shards import check_prompt_format, read_manifest

    check_prompt_format(cfg.shards)
    if cfg.valid_ids is None:
        return
    built = {t["ids_hash"]: t["ids"] for t in read_manifest(cfg.shards).get("id_tables", [])}
    if not built:
        log.warning("%s: the manifest does not record its ID tables (older shards): lineage not checked", cfg.shards)
        return
    mine = ids_hash(cfg.valid_ids)
    if mine not in built:
        raise ValueError(f"valid_ids {cfg.valid_ids} (IDs {mine}) are not the IDs the shards {cfg.shards} were built "
                         f"from ({', '.join(f'{p} = {h}' for h, p in built.items())}): the model would be selected on "
                         "IDs it never learned")


def validates(cfg: TrainConfig, epoch: int, stopped: bool) -> bool:
    """Whether the epoch just ended is validated: the last one always, the others from ``valid_from`` of the run's
    epochs on."""
    if epoch + 1 >= cfg.epochs or stopped:
        return True
    return run_done(epoch + 1, cfg.epochs) >= cfg.valid_from


def keep_best(src: Path, dst: Path) -> None:
    """Copy an epoch's export over ``best/`` atomically."""
    from infra.atomic import atomic_dir

    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)


def selection_repeats(cfg: TrainConfig) -> dict:
    """What each epoch's validation passes to the evaluation: the repeat-bias grid with ``select_with_repeats``."""
    if cfg.select_with_repeats and cfg.eval_repeat_bias_grid:
        return {"repeat_bias_grid": cfg.eval_repeat_bias_grid}
    return {}


def lever_grids(cfg: TrainConfig) -> dict[str, list[float]]:
    """Each ranking lever chosen on validation after training, and the values tried (empty: not chosen)."""
    return {"repeat_bias": cfg.eval_repeat_bias_grid, "id_prior": cfg.eval_id_prior_grid}


def final_test(cfg: TrainConfig, best: Path, valid: dict | None = None) -> dict:
    """The summary's test of the selected model with the ranking levers chosen on validation first: the repeat bias
    (``eval_repeat_bias_grid``; ``repeat_bias``: the choice, None for off, and each candidate's validation NDCG@10)
    and the ID prior correction (``eval_id_prior_grid``; ``id_prior``, likewise), chosen together; ``valid``: the
    selected epoch's validation, reused when it chose them already (``select_with_repeats``, repeat bias only)."""
    out: dict = {}
    wanted = {lever: grid for lever, grid in lever_grids(cfg).items() if grid}
    chosen = dict.fromkeys(lever_grids(cfg))  # off unless validation chooses
    if wanted:
        if valid is None or any(f"{lever}_ndcg10" not in valid for lever in wanted):
            valid = evaluate_export(best, cfg, "valid", **{f"{lever}_grid": grid for lever, grid in wanted.items()})
        for lever in wanted:
            chosen[lever] = valid.get(lever)
            out[lever] = {"chosen": chosen[lever], "valid_ndcg10": valid[f"{lever}_ndcg10"], "valid": valid}
            log.info("%s chosen on validation: %s (NDCG@10 of each: %s)", lever.replace("_", " "), chosen[lever],
                     valid[f"{lever}_ndcg10"])
    out["test_at_best"] = evaluate_export(best, cfg, "test", **chosen)
    return out


def evaluate_export(model_dir: Path, cfg: TrainConfig, split: str, out: Path | None = None, **levers) -> dict:
    """Validation (or test) of an export, with prompts made the way the shards made them, into ``out`` (default
    the export's ``eval/``); ``levers``: EvalConfig's ranking fields (repeat bias, text prior)."""
    from eval.evaluate import EvalConfig, evaluate
    from pretrain.shards import read_manifest

    manifest = read_manifest(cfg.shards)
    m = evaluate(EvalConfig(model=model_dir, catalog=cfg.valid_catalog, ids=cfg.valid_ids,
                            out=out or model_dir / "eval", split=split, beams=cfg.eval_beams, batch_size=cfg.eval_batch_size,
                            length_penalty=cfg.eval_length_penalty,
                            max_users=cfg.valid_max_users if split == "valid" else cfg.test_max_users,
                            user_ids=manifest.get("user_ids", False), max_history=manifest.get("max_history", LEGACY_MAX_HISTORY),
                            device="auto", **levers))
    keep = ("users", "partial", *METRICS, "se", "coverage@10", "repeat_bias", "repeat_bias_ndcg10", "text_prior",
            "text_prior_ndcg10", "without_text_prior", "id_prior", "id_prior_ndcg10", "without_id_prior")
    return {k: m[k] for k in keep if k in m}
