"""The catalog subcommands of ``idgenrec``: prepare, corpus, tokenizer, sample, stats."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from catalog.corpus import HELP as CORPUS_HELP
from catalog.corpus import CorpusConfig, build_corpus
from catalog.prepare import HELP as PREPARE_HELP
from catalog.prepare import PrepareConfig, prepare
from catalog.tokenizer import HELP as TOKENIZER_HELP
from catalog.tokenizer import TokenizerConfig, make_tokenizer
from infra.config import add_job

log = logging.getLogger("idgenrec")


def format_stats(stats: dict) -> str:
    """The few numbers a person checks first, one line."""
    return (f"{stats.get('domain', '?')}: users {stats['users']:,}  items {stats['items']:,}  "
            f"interactions {stats['interactions']:,}  density {stats['density']:.5f}  "
            f"text coverage {stats['text_coverage']:.1%}  mean text words {stats['mean_text_words']:.1f}  "
            f"skipped {stats['skipped'] or 'none'}")


def run_prepare(cfg: PrepareConfig) -> None:
    if cfg.data is None or cfg.out is None:
        raise SystemExit("idgenrec prepare: --data and --out are required (or give them in --config)")
    catalog = prepare(cfg)
    log.info("wrote %s", cfg.out)
    print(format_stats(catalog.stats))


def run_tokenizer(cfg: TokenizerConfig) -> None:
    if cfg.out is None:
        raise SystemExit("idgenrec tokenizer: --out is required")
    tok = make_tokenizer(cfg)
    example = "title: chi pro hair dryer diffuser"
    print(f"tokenizer: vocab {len(tok)}; {example!r} -> {tok.tokenize(example)[:12]}")


def run_corpus(cfg: CorpusConfig) -> None:
    cat = build_corpus(cfg)
    for name, d in cat.stats["domains"].items():
        print(f"  {name}: users {d['users']:,} (of {d['users_before_cap']:,})  items {d['items']:,}  "
              f"interactions {d['interactions']:,}")
    print(f"corpus: users {cat.stats['users']:,}  items {cat.stats['items']:,}  "
          f"interactions {cat.stats['interactions']:,}")


def run_sample(args: argparse.Namespace) -> None:
    from catalog.sample import write_slice

    counts = write_slice(args.data, args.out, args.users, args.seed)
    print(f"sample of {args.data.name}: {counts}")


def run_stats(args: argparse.Namespace) -> None:
    for path in args.catalog:
        stats = json.loads((Path(path) / "stats.json").read_text())
        print(json.dumps(stats, indent=2) if args.json else format_stats(stats))


def register(sub: argparse._SubParsersAction) -> None:
    add_job(sub, "prepare", PrepareConfig, run_prepare,
            "normalize a dataset into a catalog directory (Parquet + stats.json)",
            "Read a dataset folder (shared layout user_sequence.txt + items.jsonl.gz, raw Amazon 2014/2018, or the "
            "Yelp academic dataset), render item text, and write items.parquet, sequences.parquet and stats.json "
            "atomically. Bad input stops with file:line unless --skip-bad.", PREPARE_HELP)
    add_job(sub, "tokenizer", TokenizerConfig, run_tokenizer,
            "train a SentencePiece tokenizer on catalogs, or copy a local one",
            "Train a SentencePiece unigram tokenizer (T5 specials: pad 0, eos 1, unk 2) on the rendered text of one or "
            "more catalogs, or copy a local HuggingFace tokenizer (--pretrained). Held-out catalogs are refused.",
            TOKENIZER_HELP)

    p = sub.add_parser("sample", help="write a small random slice of a dataset (shared layout)",
                       description="Draw users at random (seeded) from a dataset folder and write them, with the items "
                                   "they touch, as a dataset folder in the shared layout.")
    p.add_argument("--data", type=Path, required=True, help="dataset folder (shared layout)")
    p.add_argument("--out", type=Path, required=True, help="folder to write")
    p.add_argument("--users", type=int, default=1000, help="users to draw (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the draw (default 0)")
    p.set_defaults(func=run_sample)

    p = sub.add_parser("stats", help="print the stats of catalog directories",
                       description="Print users, items, interactions, density, text coverage and skipped input of "
                                   "catalog directories written by idgenrec prepare or corpus.")
    p.add_argument("catalog", nargs="+", type=Path, help="catalog directories")
    p.add_argument("--json", action="store_true", help="print the whole stats.json")
    p.set_defaults(func=run_stats)

    add_job(sub, "corpus", CorpusConfig, run_corpus,
            "merge datasets into one multi-domain catalog for foundation pretraining",
            "Merge dataset folders into one catalog with domain-qualified item and user ids, capping users per domain "
            "with the seed; held-out datasets (--heldout) are checked never to overlap the pretraining ones.",
            CORPUS_HELP)
