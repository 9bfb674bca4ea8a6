"""The tokenizer shared by the ID generator and the recommender.

Either a local HuggingFace tokenizer directory the user gives (e.g. a downloaded ``t5-small``), or a SentencePiece
unigram model trained on the catalog's own text (rendered item text, plus the same text lower-cased, since IDs are
lower-case words), saved as a directory ``AutoTokenizer.from_pretrained`` loads, with T5's special tokens
(pad 0, eos 1, unk 2). The Hub is never contacted.

Pitfall (transformers 5): ``T5Tokenizer(vocab_file=...)`` silently ignores the file and builds a tiny vocabulary;
``T5Tokenizer.from_pretrained(dir_with_spiece_model)`` reads it correctly, so that is what we use.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

log = logging.getLogger(__name__)
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2


@dataclass
class TokenizerConfig:
    """``idgenrec tokenizer``: where the text comes from and how big the vocabulary is."""

    catalog: list[Path] | None = None
    out: Path | None = None
    pretrained: Path | None = None
    vocab_size: int = 8000
    seed: int = 0

    def check(self) -> None:
        if self.vocab_size < 64:
            raise ValueError("vocab_size must be >= 64")


def train_sentencepiece(texts: Iterable[str], out: Path, vocab_size: int = 8000, seed: int = 0) -> Path:
    """Train a unigram model on ``texts`` (and their lower-cased copies) into ``out/spiece.model``.

    ``seed`` picks the input sentences when there are more than ``input_sentence_size``."""
    import sentencepiece as spm

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
            input_sentence_size=2_000_000, shuffle_input_sentence=True, minloglevel=2, num_threads=os.cpu_count() or 1,
        )
    finally:
        os.unlink(corpus)
    return out / "spiece.model"


def build_tokenizer(texts: Iterable[str], out: Path, vocab_size: int = 8000, seed: int = 0):
    """Train SentencePiece on ``texts`` and save a T5 tokenizer directory at ``out`` (atomically)."""
    from transformers import T5Tokenizer

    from catalog.atomic import atomic_dir

    with atomic_dir(out) as tmp:
        train_sentencepiece(texts, tmp / "sp", vocab_size, seed)
        tok = T5Tokenizer.from_pretrained(str(tmp / "sp"), extra_ids=0)
        tok.save_pretrained(str(tmp))
        (tmp / "sp" / "spiece.model").replace(tmp / "spiece.model")
        (tmp / "sp" / "spiece.vocab").unlink()
        (tmp / "sp").rmdir()
    return load_tokenizer(out)


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
