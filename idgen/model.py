"""T5 seq2seq models (the ID generator, and the recommender too): built from a size config or loaded from a local
directory. The Hub is never contacted: a real user passes a downloaded ``t5-small`` directory as ``pretrained``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "model"


@dataclass
class ModelConfig:
    """A T5 size (ignored when ``pretrained`` names a local checkpoint directory)."""

    pretrained: Path | None = None
    d_model: int = 512
    d_ff: int = 2048
    num_layers: int = 6
    num_heads: int = 8
    d_kv: int = 64
    dropout_rate: float = 0.1
    seed: int = 0


def model_config(name_or_path: str | Path) -> ModelConfig:
    """A size by name (``tiny``, ``mini``, ``small`` from configs/model/) or a YAML path."""
    from catalog.config import load_config

    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    return load_config(ModelConfig, path)


def build_model(cfg: ModelConfig, tokenizer):
    """A T5ForConditionalGeneration: from ``cfg.pretrained`` if given, else randomly initialized (seeded)."""
    from transformers import T5Config, T5ForConditionalGeneration

    if cfg.pretrained is not None:
        return load_model(cfg.pretrained)
    t5 = T5Config(
        vocab_size=len(tokenizer), d_model=cfg.d_model, d_ff=cfg.d_ff, num_layers=cfg.num_layers,
        num_decoder_layers=cfg.num_layers, num_heads=cfg.num_heads, d_kv=cfg.d_kv, dropout_rate=cfg.dropout_rate,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        return T5ForConditionalGeneration(t5)


def load_model(path: Path | str):
    """A T5 checkpoint from a local directory (safetensors), never the Hub."""
    from transformers import T5ForConditionalGeneration

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: no config.json: not a local model directory")
    return T5ForConditionalGeneration.from_pretrained(str(path), local_files_only=True)


def save_model(model, tokenizer, out: Path | str) -> None:
    """Model (safetensors) + tokenizer in one directory, written atomically."""
    from catalog.atomic import atomic_dir

    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
