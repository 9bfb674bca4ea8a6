"""``idgenrec demo``: the whole system on the embedded sample, each step skipped when its output exists.

The standard recipe on the Beauty sample (prepare, tokenizer, generator warm start, item IDs through a local Ray
cluster with 2 actors, shards, a short deepspeed run with 2 CPU processes and validation selection, test metrics,
SASRec, popularity), then zero-shot transfer to the Toys sample (never trained on, its text kept out of the
tokenizer), then the report. Sized for a few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from catalog.sample import SAMPLE_DIR
from catalog.store import read_catalog
from cluster.commands import format_stats
from catalog.tokenizer import TokenizerConfig
from cluster.standard import StandardConfig, run_standard
from cluster.zeroshot import ZeroShotConfig, run_zeroshot
from eval.report import write_report
from eval.runs import TrainingRun
from eval.sasrec import SASRecConfig
from idgen.warmstart import WarmStartConfig
from pretrain.shards import ShardsConfig
from pretrain.train import TrainConfig

log = logging.getLogger("idgenrec.demo")
TRAIN, HELDOUT = "Beauty", "Toys"


def demo_configs(args: argparse.Namespace) -> tuple[StandardConfig, TrainConfig]:
    """The standard run's and the recommender's configs for the demo's flags."""
    out: Path = args.out
    standard = StandardConfig(
        data=SAMPLE_DIR / TRAIN, out=out / TRAIN, heldout=[SAMPLE_DIR / HELDOUT], init_from_generator=True, procs=2,
        tokenizer=TokenizerConfig(vocab_size=args.vocab_size),
        # the tiny generator at lr 1e-2 learns its words within 1,500 steps (loss 0.6): no minimum of passes
        warmstart=WarmStartConfig(model_size=args.size, steps=args.warmstart_steps, min_epochs=0, lr=args.lr,
                                  max_source_tokens=32),
        shards=ShardsConfig(samples_per_shard=1000), sasrec=SASRecConfig(epochs=args.sasrec_epochs))
    # The measured recipe, sized for minutes: the tiny model at lr 1e-2, a fixed 50-step warmup, validation of the
    # second half of the epochs only and no repeat-bias search (each validation costs a large share of the run).
    recommender = TrainConfig(zero_stage=2, micro_batch=32, epochs=args.epochs, lr=args.lr, warmup_ratio=0.0,
                              valid_from=0.5, eval_repeat_bias_grid=[])
    return standard, recommender


def run_demo(args: argparse.Namespace) -> None:
    out: Path = args.out
    t0 = time.time()
    run_standard(*demo_configs(args))
    generator, best = out / TRAIN / "generator", TrainingRun(out / TRAIN / "recommender").best
    run_zeroshot(ZeroShotConfig(generator=generator, recommender=best, data=[SAMPLE_DIR / HELDOUT],
                                out=out / "zeroshot", actors=2))
    write_report([out / TRAIN, out / "zeroshot"], out / "report")
    print("\nSample catalogs:")
    print("  " + format_stats(read_catalog(out / TRAIN / "catalog").stats))
    print("  " + format_stats(read_catalog(out / "zeroshot" / HELDOUT / "catalog").stats))
    print(f"\nDemo done in {time.time() - t0:.0f} s; report: {out / 'report' / 'report.md'}\n")
    print((out / "report" / "report.md").read_text().split("## Paper reference")[0])
    print("ID examples (item text -> ID):")
    for e in json.loads((generator / "warmstart.json").read_text())["examples"][:5]:
        print(f"  {e['text'][:60]!r} -> {e['id']!r}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on the embedded sample (train Beauty, zero-shot Toys)",
                       description=__doc__.replace("``", ""), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--vocab-size", type=int, default=4000, help="tokenizer vocabulary size (default 4000)")
    p.add_argument("--size", default="tiny", help="generator size, which the recommender starts from (tiny, mini, "
                   "small or a YAML path; default tiny)")
    p.add_argument("--lr", type=float, default=1e-2, help="learning rate of the warm start and the recommender")
    p.add_argument("--warmstart-steps", type=int, default=1500, help="generator warm-start steps (default 1500)")
    p.add_argument("--epochs", type=int, default=7, help="recommender epochs (default 7)")
    p.add_argument("--sasrec-epochs", type=int, default=200, help="SASRec's most epochs (early stopping on validation)")
    p.set_defaults(func=run_demo)
