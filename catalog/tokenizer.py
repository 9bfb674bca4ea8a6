"""The tokenizer shared by the ID generator and the recommender.

Either a local HuggingFace tokenizer directory the user gives (e.g. a downloaded ``t5-small``), or a SentencePiece
unigram model trained on the catalog's own text (rendered item text, plus the same text lower-cased, since IDs are
lower-case words), saved as a directory ``AutoTokenizer.from_pretrained`` loads, with T5's special tokens
(pad 0, eos 1, unk 2). The Hub is never contacted.

Pitfall (transformers 5): ``T5Tokenizer(vocab_file=...)`` silently ignores the file and builds a tiny vocabulary;
``T5Tokenizer.from_pretrained(dir_with_spiece_model)`` reads it correctly, so that is what we use.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import infra  # noqa: E402,F401  (keeps the model hub offline before transformers loads)

log = logging.getLogger(__name__)
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
# SentencePiece's unigram trainer splits its EM sums among its threads, so the model it writes depends on how many
# there are (on Scientific, models trained with 1, 4 or 16 threads each tokenize 42-45% of the items otherwise than
# one trained with 2).
# A fixed count makes a tokenizer, and every step after it, the same on any machine; 2 is the count the results of
# record were trained with (2-core machines), so their tokenizers stay what they were.
TRAIN_THREADS = 2


@dataclass
class TokenizerConfig:
    """``idgenrec tokenizer``: where the text comes from and how big the vocabulary is."""

    catalog: list[Path] | None = None
    out: Path | None = None
    pretrained: Path | None = None
    heldout: list[Path] = field(default_factory=list)
    vocab_size: int = 8000
    seed: int = 0

    def check(self) -> None:
        if self.vocab_size < 64:
            raise ValueError("vocab_size must be >= 64")


HELP = {"catalog": "catalog directories to train on", "out": "tokenizer directory to write",
        "pretrained": "local HuggingFace tokenizer directory (e.g. t5-small)",
        "heldout": "datasets or catalogs kept for zero-shot evaluation: refused as training text",
        "vocab_size": "SentencePiece vocabulary size (an upper bound)"}


def train_sentencepiece(texts: Iterable[str], out: Path, vocab_size: int = 8000, seed: int = 0) -> Path:
    """Train a unigram model on ``texts`` (and their lower-cased copies) into ``out/spiece.model``.

    ``seed`` picks the input sentences when there are more than ``input_sentence_size``. The thread count is
    ``TRAIN_THREADS`` whatever the machine has: the model depends on it."""
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
        n = 0
        for text in texts:
            if text:
                fh.write(text.replace("\n", " ") + "\n" + text.lower().replace("\n", " ") + "\n")
                n += 1
        corpus = fh.name
    if n == 0:
        os.unlink(corpus)
        raise ValueError("no text to train a tokenizer on")
    try:
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=str(out / "spiece"), vocab_size=vocab_size, model_type="unigram",
            pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
            unk_piece="<unk>", hard_vocab_limit=False, character_coverage=0.9995,
            input_sentence_size=2_000_000, shuffle_input_sentence=True, minloglevel=2, num_threads=TRAIN_THREADS,
        )
    finally:
        os.unlink(corpus)
    return out / "spiece.model"


def build_tokenizer(texts: Iterable[str], out: Path, vocab_size: int = 8000, seed: int = 0,
                    domains: Iterable[str] = ()):
    """Train SentencePiece on ``texts`` and save a T5 tokenizer directory at ``out`` (atomically), recording the
    ``domains`` its text came from (``idgenrec.json``)."""
    from transformers import T5Tokenizer

    from catalog.heldout import PROVENANCE_FILE
    from infra.atomic import atomic_dir

    with atomic_dir(out) as tmp:
        (tmp / PROVENANCE_FILE).write_text(json.dumps({"domains_seen": sorted(domains)}) + "\n")
        train_sentencepiece(texts, tmp / "sp", vocab_size, seed)
        tok = T5Tokenizer.from_pretrained(str(tmp / "sp"), extra_ids=0)
        tok.save_pretrained(str(tmp))
        (tmp / "sp" / "spiece.model").replace(tmp / "spiece.model")
        (tmp / "sp" / "spiece.vocab").unlink()
        (tmp / "sp").rmdir()
    return load_tokenizer(out)


def make_tokenizer(cfg: TokenizerConfig):
    """``idgenrec tokenizer``: copy a local pretrained tokenizer, or train one on the catalogs' text. Catalogs that
    are or overlap a held-out dataset (named by ``heldout`` or recorded as held out by a corpus) are refused: the
    vocabulary would already know the unseen domain's words."""
    from catalog.heldout import catalog_domains, check_unseen, dataset_name, declared_heldout
    from catalog.store import read_catalog

    if cfg.out is None:
        raise ValueError("tokenizer needs out")
    if cfg.pretrained is not None:
        tok = load_tokenizer(cfg.pretrained)
        tok.save_pretrained(str(cfg.out))
        log.info("copied tokenizer from %s to %s (vocab %d)", cfg.pretrained, cfg.out, len(tok))
        return tok
    if not cfg.catalog:
        raise ValueError("give catalog directories to train on, or a pretrained tokenizer directory")
    catalogs = {str(c): read_catalog(c) for c in cfg.catalog}
    domains = {src: catalog_domains(c) for src, c in catalogs.items()}
    check_unseen(domains, {dataset_name(h) for h in cfg.heldout} | declared_heldout(catalogs.values()), "tokenizer")
    texts = [t for c in catalogs.values() for t in c.texts]
    tok = build_tokenizer(texts, cfg.out, cfg.vocab_size, cfg.seed, set().union(*domains.values()))
    log.info("trained SentencePiece unigram on %d texts of %s -> %s (vocab %d)", len(texts),
             ", ".join(sorted(set().union(*domains.values()))), cfg.out, len(tok))
    return tok


def load_tokenizer(path: Path | str):
    """A tokenizer from a local directory (ours or a downloaded HuggingFace one); never the Hub."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: tokenizer directory not found (give a local path; the Hub is not used)")
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.pad_token_id is None or tok.eos_token_id is None:
        raise ValueError(f"{path}: tokenizer has no pad or eos token")
    return tok


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash of what decides token ids: the tokenizer's definition as loaded from its files (vocabulary,
    normalizer, pre-tokenizer, added and special tokens), without run-time settings such as padding or truncation.
    Two copies of one tokenizer agree; two SentencePiece models of the same size do not."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
    else:  # a slow tokenizer: its vocabulary and specials
        spec = {"vocab": sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]),
                "special": sorted(map(str, tokenizer.all_special_tokens))}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def require_same_tokenizer(a, a_name: str, b, b_name: str) -> str:
    """Raise one clear error naming both sides when two tokenizers differ; return the common fingerprint."""
    fa, fb = tokenizer_fingerprint(a), tokenizer_fingerprint(b)
    if fa != fb:
        raise ValueError(f"tokenizer mismatch: {a_name} uses tokenizer {fa} (vocabulary {len(a)}) but {b_name} uses "
                         f"tokenizer {fb} (vocabulary {len(b)}); their token ids mean different things")
    return fa
