"""``idgenrec demo``: the main job on the embedded sample; each step is skipped when its output exists."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from catalog.prepare import PrepareConfig, prepare
from catalog.sample import SAMPLE_DIR
from catalog.store import read_catalog
from catalog.tokenizer import build_tokenizer
from cluster.commands import format_stats

log = logging.getLogger("idgenrec.demo")
DOMAINS = ("Beauty", "Toys")  # train on the first; the second is the zero-shot target


def run_demo(args: argparse.Namespace) -> None:
    out: Path = args.out
    for domain in DOMAINS:
        target = out / "catalog" / domain
        if (target / "stats.json").exists():
            log.info("catalog %s: done already (%s)", domain, target)
        else:
            prepare(PrepareConfig(data=SAMPLE_DIR / domain, out=target, domain=domain))
            log.info("catalog %s: written to %s", domain, target)
    tok_dir = out / "tokenizer"
    if (tok_dir / "tokenizer.json").exists():
        log.info("tokenizer: done already (%s)", tok_dir)
    else:
        texts = [t for d in DOMAINS for t in read_catalog(out / "catalog" / d).texts]
        tok = build_tokenizer(texts, tok_dir, vocab_size=args.vocab_size)
        log.info("tokenizer: vocab %d -> %s", len(tok), tok_dir)
    print("\nSample catalogs:")
    for domain in DOMAINS:
        print("  " + format_stats(read_catalog(out / "catalog" / domain).stats))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the pipeline on the embedded sample (Beauty, Toys)",
                       description="Prepare the embedded sample catalogs, train the tokenizer, and print stats. "
                                   "Finished steps are reused on a second run.")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    p.add_argument("--vocab-size", type=int, default=4000, help="tokenizer vocabulary size (default 4000)")
    p.set_defaults(func=run_demo)
