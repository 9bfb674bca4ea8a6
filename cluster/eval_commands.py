"""The evaluation and serving subcommands of ``idgenrec``: eval, recommend, zeroshot, report, sasrec."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cluster.recommend import HELP as RECOMMEND_HELP
from cluster.recommend import RecommendConfig
from cluster.zeroshot import HELP as ZS_HELP
from cluster.zeroshot import ZeroShotConfig, run_zeroshot
from eval.evaluate import HELP, EvalConfig, evaluate
from eval.sasrec import HELP as SASREC_HELP
from eval.sasrec import SASRecConfig
from infra.config import add_job


def run_eval(cfg: EvalConfig) -> None:
    m = evaluate(cfg)
    print(f"{m['split']}: users {m['users']}  HR@5 {m['HR@5']:.4f}  HR@10 {m['HR@10']:.4f}  "
          f"NDCG@5 {m['NDCG@5']:.4f}  NDCG@10 {m['NDCG@10']:.4f}  ({m['users_per_s']:.1f} users/s)\n"
          f"popularity: HR@10 {m['popularity']['HR@10']:.4f}  NDCG@10 {m['popularity']['NDCG@10']:.4f}")


def run_recommend_command(cfg: RecommendConfig) -> None:
    from cluster.recommend import run_recommend

    r = run_recommend(cfg)
    logging.getLogger("idgenrec.recommend").info("recommended for %d histories%s", r["users"],
                                                 f"; skipped {r['skipped']}" if r["skipped"] else "")


def run_zeroshot_command(cfg: ZeroShotConfig) -> None:
    for name, m in run_zeroshot(cfg).items():
        print(f"{name}: users {m['users']}  HR@5 {m['HR@5']:.4f}  HR@10 {m['HR@10']:.4f}  NDCG@5 {m['NDCG@5']:.4f}  "
              f"NDCG@10 {m['NDCG@10']:.4f}  (popularity HR@10 {m['popularity']['HR@10']:.4f})")


def run_report(args: argparse.Namespace) -> None:
    from eval.report import write_report

    data = write_report(args.runs, args.out)
    print(f"report: {len(data['datasets'])} datasets -> {args.out / 'report.md'}")


def run_sasrec(cfg: SASRecConfig) -> None:
    from catalog.store import read_catalog
    from eval.runs import write_sasrec
    from eval.sasrec import train_sasrec
    from infra.config import config_to_dict

    if cfg.catalog is None or cfg.out is None:
        raise SystemExit("idgenrec sasrec: --catalog and --out are required (or give them in --config)")
    cat = read_catalog(cfg.catalog)
    r = train_sasrec(cat.sequences, cat.item_ids, cfg)
    r = {"dataset": cat.stats.get("domain") or cfg.catalog.name, **r, "config": config_to_dict(cfg)}
    write_sasrec(cfg.out, r)
    t = r["test"]
    print(f"SASRec {r['dataset']}: test HR@5 {t['HR@5']:.4f} HR@10 {t['HR@10']:.4f} NDCG@5 {t['NDCG@5']:.4f} "
          f"NDCG@10 {t['NDCG@10']:.4f} (best epoch {r['best_epoch']} of {r['epochs_run']} on validation NDCG@10"
          f"{'' if r['converged'] else '; NOT converged: the best epoch is the last'}; {r['seconds']} s)")


def register(sub: argparse._SubParsersAction) -> None:
    add_job(sub, "eval", EvalConfig, run_eval,
            "leave-one-out HR@5/10 and NDCG@5/10 over all items (trie-constrained beams)",
            "Evaluate a recommender on the valid or test split: one prompt per eligible user, trie-constrained beam "
            "search over all item IDs, metrics JSON and per-user top-k Parquet in --out, with the popularity "
            "baseline alongside.", HELP)
    add_job(sub, "recommend", RecommendConfig, run_recommend_command,
            "top-k next items for histories (a file or standard input), as JSON lines",
            "Recommend with a trained model: each history (user_sequence.txt layout or JSON lines {\"user\", "
            "\"history\"}, from --histories or standard input) gets its top-k items by trie-constrained beam search "
            "with the evaluation's prompt, streamed as JSON lines {\"user\", \"items\", \"scores\"} to standard "
            "output or written atomically to --out. Unknown items or empty histories stop the run with the file "
            "and line, or are skipped and counted with --skip-bad.", RECOMMEND_HELP)
    add_job(sub, "zeroshot", ZeroShotConfig, run_zeroshot_command,
            "zero-shot evaluation of a pretrained model on unseen datasets (Ray tasks)",
            "For each held-out dataset (one Ray task each): prepare, generate IDs for its unseen items with the "
            "trained generator (Algorithm 1), evaluate the test split with no training. Per-dataset results are "
            "cached: a rerun skips finished datasets.", ZS_HELP)
    p = sub.add_parser("report", help="report.md, report.json and PNG plots from run folders",
                       description="Collect the test metrics of evaluations, zero-shot runs and SASRec, and trainers' "
                                   "loss curves, under run folders into one table per dataset, with the protocol "
                                   "stated and the paper's figures beside ours. A row scored on other users than "
                                   "the rest of its table is marked NOT COMPARABLE.")
    p.add_argument("runs", nargs="+", type=Path, help="run folders to collect (eval, zeroshot, sasrec, training)")
    p.add_argument("--out", type=Path, required=True, help="report folder")
    p.set_defaults(func=run_report)
    add_job(sub, "sasrec", SASRecConfig, run_sasrec,
            "train and evaluate the SASRec baseline on a catalog (full-softmax CE)",
            "SASRec as RecBole configures it (CE loss, 2 blocks, 2 heads, hidden 64, dropout 0.5, max length 50, Adam "
            "lr 1e-3, batch 2048, early stopping on validation NDCG@10 with patience 10): trained on the catalog's "
            "training positions, the best validation epoch evaluated on test. Writes sasrec.json (valid and test "
            "metrics, best epoch, seconds, config).", SASREC_HELP)
