"""``idgenrec demo``: the whole pipeline on the embedded sample, each step skipped when its output exists.

prepare (Beauty, Toys) -> tokenizer -> generator warm start -> item IDs through a local Ray cluster with 2 actors ->
shards -> a short deepspeed run with 2 CPU processes (validation-based selection) -> evaluation on Beauty ->
zero-shot transfer to Toys (never trained on) -> SASRec on Beauty -> report. Sized for about 10 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from catalog.prepare import PrepareConfig, prepare
from catalog.sample import SAMPLE_DIR
from catalog.store import read_catalog
from catalog.tokenizer import TokenizerConfig, make_tokenizer
from cluster.commands import format_stats

log = logging.getLogger("idgenrec.demo")
TRAIN, HELDOUT = "Beauty", "Toys"


def _step(name: str, done: bool) -> bool:
    """Log and say whether to run a step."""
    if done:
        log.info("[%s] done already: skipped", name)
    else:
        log.info("[%s] running", name)
    return not done


def run_demo(args: argparse.Namespace) -> None:
    from infra.atomic import write_json
    from cluster.idjob import IDJobConfig, run_ids
    from cluster.zeroshot import ZeroShotConfig, run_zeroshot
    from eval.evaluate import EvalConfig, evaluate
    from eval.report import write_report
    from eval.sasrec import SASRecConfig, train_sasrec
    from idgen.warmstart import WarmStartConfig, warmstart
    from pretrain.launch import launch_train
    from pretrain.shards import ShardsConfig, write_shards

    out: Path = args.out
    t0 = time.time()
    cat_dir = out / "catalog" / TRAIN
    for domain in (TRAIN, HELDOUT):
        if _step(f"prepare {domain}", (out / "catalog" / domain / "stats.json").exists()):
            prepare(PrepareConfig(data=SAMPLE_DIR / domain, out=out / "catalog" / domain, domain=domain))
    tok_dir = out / "tokenizer"
    if _step("tokenizer (training catalog only)", (tok_dir / "tokenizer.json").exists()):
        make_tokenizer(TokenizerConfig(catalog=[cat_dir], out=tok_dir, vocab_size=args.vocab_size,
                                       heldout=[out / "catalog" / HELDOUT]))
    gen = out / "generator"
    if _step("warm start", (gen / "warmstart.json").exists()):
        warmstart(WarmStartConfig(catalog=[cat_dir], tokenizer=tok_dir, out=gen, model_size="tiny",
                                  steps=args.warmstart_steps, lr=1e-2, batch_size=32, max_source_tokens=32))
    ids = out / "ids" / TRAIN
    if _step("item IDs (Ray, 2 actors)", (ids / "item_ids.parquet").exists()):
        run_ids(IDJobConfig(catalog=cat_dir, out=ids, model=gen, actors=2, max_source_tokens=32))
    shards = out / "shards" / TRAIN
    if _step("shards", (shards / "manifest.json").exists()):
        write_shards(ShardsConfig(catalog=[cat_dir], ids=[ids], out=shards, samples_per_shard=1000))
    rec = out / "recommender"
    if _step("recommender (deepspeed, 2 CPU processes)", (rec / "summary.json").exists()):
        launch_train(2, ["--shards", shards, "--out", rec, "--init", gen, "--zero-stage", 2, "--micro-batch", 32,
                         "--epochs", args.epochs, "--lr", 3e-3, "--valid-catalog", cat_dir, "--valid-ids", ids,
                         "--eval-beams", 20], check=True)
    ev = out / "eval" / TRAIN
    if _step("evaluate Beauty test", (ev / "metrics_test.json").exists()):
        evaluate(EvalConfig(model=rec / "best", catalog=cat_dir, ids=ids, out=ev, split="test"))
    zs = out / "zeroshot"
    if _step("zero-shot Toys", (zs / "zeroshot.json").exists()):
        run_zeroshot(ZeroShotConfig(generator=gen, recommender=rec / "best", data=[SAMPLE_DIR / HELDOUT], out=zs,
                                    actors=2))
    sas = out / "sasrec" / TRAIN
    if _step("SASRec Beauty", (sas / "sasrec.json").exists()):
        cat = read_catalog(cat_dir)
        r = train_sasrec(cat.sequences, cat.item_ids, SASRecConfig(epochs=args.sasrec_epochs))
        write_json(sas / "sasrec.json", {"dataset": TRAIN, **r})
    write_report([out / "eval", zs, out / "sasrec", rec], out / "report")
    print("\nSample catalogs:")
    for domain in (TRAIN, HELDOUT):
        print("  " + format_stats(read_catalog(out / "catalog" / domain).stats))
    print(f"\nDemo done in {time.time() - t0:.0f} s; report: {out / 'report' / 'report.md'}\n")
    print((out / "report" / "report.md").read_text().split("## Paper reference")[0])
    ws = json.loads((gen / "warmstart.json").read_text())
    print("ID examples (item text -> ID):")
    for e in ws["examples"][:5]:
        print(f"  {e['text'][:60]!r} -> {e['id']!r}")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on the embedded sample (train Beauty, zero-shot Toys)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--vocab-size", type=int, default=4000, help="tokenizer vocabulary size (default 4000)")
    p.add_argument("--warmstart-steps", type=int, default=1500)
    p.add_argument("--epochs", type=int, default=2, help="recommender epochs (default 2)")
    p.add_argument("--sasrec-epochs", type=int, default=200, help="SASRec's most epochs (early stopping on validation)")
    p.set_defaults(func=run_demo)
