"""T5 seq2seq models (the ID generator, and the recommender too): built from a size or loaded from a local directory.

The Hub is never contacted: a real user passes a downloaded ``t5-small`` directory. Sizes (``tiny``, ``mini``,
``small``) are YAML files shipped inside the package (``seq2seq/sizes/``), so an installed wheel has them too.
A saved model directory holds the model (safetensors), its tokenizer, and ``idgenrec.json`` with the tokenizer's
fingerprint: loading checks that the two still belong together.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import infra  # noqa: E402,F401  (keeps the model hub offline before transformers loads)

SIZES_DIR = Path(__file__).resolve().parent / "sizes"
MODEL_META = "idgenrec.json"
ARCHITECTURE = ("d_model", "d_ff", "num_layers", "num_heads", "d_kv")


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
    """A size by name (``tiny``, ``mini``, ``small``) or a YAML path."""
    from infra.config import load_config

    path = Path(name_or_path)
    if not path.suffix:
        path = SIZES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in SIZES_DIR.glob("*.yaml"))
            raise ValueError(f"unknown model size {str(name_or_path)!r}: one of {known} or a YAML path")
    return load_config(ModelConfig, path)


def architecture(model) -> dict[str, int]:
    """The size fields of a loaded T5 (what a ModelConfig sets)."""
    return {k: getattr(model.config, k) for k in ARCHITECTURE}


def check_size(model, size: str | Path, where: str) -> None:
    """A model started from a checkpoint while a size is also named: they must agree, or the run would silently
    train another model than the one its config names."""
    want = {k: v for k, v in asdict(model_config(size)).items() if k in ARCHITECTURE}
    have = architecture(model)
    if want != have:
        diff = ", ".join(f"{k} {have[k]} vs {want[k]}" for k in ARCHITECTURE if have[k] != want[k])
        raise ValueError(f"{where} has another architecture than model_size {str(size)!r} ({diff}); drop "
                         "model_size to train the checkpoint as it is, or drop the checkpoint to train that size")


def set_dropout(model, rate: float) -> None:
    """Every dropout of the model at ``rate`` (and its config, so that an export keeps it). T5's attention keeps
    its attention-weight dropout as a plain float (``T5Attention.dropout``), not a module: missing it left rate 0
    still dropping attention weights at the checkpoint's 0.1 (and 18% slower on CPU, measured on Scientific)."""
    model.config.dropout_rate = rate
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = rate
        elif isinstance(getattr(m, "dropout", None), float):
            m.dropout = rate


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


def seq2seq_loss(output, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """The model's own cross-entropy, or a label-smoothed one over the same target tokens."""
    if not label_smoothing:
        return output.loss
    logits = output.logits.float()
    return torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100,
                                             label_smoothing=label_smoothing)


def start_model(init: Path | str | None, tokenizer: Path | str | None, size: str | Path | None, default_size: str,
                seed: int, dropout: float | None = None, what: str = "init"):
    """(model, tokenizer) a training starts from, in training mode: the local checkpoint ``init`` (with its own
    tokenizer; a ``tokenizer`` or ``size`` also named must agree with it), else a fresh model of ``size``
    (``default_size`` when None) seeded with ``seed``, over the tokenizer in ``tokenizer``. With ``dropout``, every
    dropout at that rate (a loaded checkpoint comes in eval mode, where its dropout would silently be off)."""
    from catalog.tokenizer import load_tokenizer, require_same_tokenizer

    if init is None:
        tok = load_tokenizer(tokenizer)
        mcfg = model_config(size or default_size)
        mcfg.seed = seed
        model = build_model(mcfg, tok)
    else:
        model, tok = load_model_and_tokenizer(init)
        if tokenizer is not None:
            require_same_tokenizer(tok, f"{what} {init}", load_tokenizer(tokenizer), f"tokenizer {tokenizer}")
        if size is not None:
            check_size(model, size, f"{what} {init}")
    if dropout is not None:
        set_dropout(model, dropout)
    return model.train(), tok


def load_model_and_tokenizer(path: Path | str):
    """(model, tokenizer) from one directory, checked to belong together: the tokenizer is the one the model was
    saved with (fingerprint in ``idgenrec.json``) and fits the model's embedding table."""
    from catalog.tokenizer import load_tokenizer, tokenizer_fingerprint

    path = Path(path)
    model, tok = load_model(path), load_tokenizer(path)
    saved = model_meta(path).get("tokenizer_fingerprint")
    if saved and saved != tokenizer_fingerprint(tok):
        raise ValueError(f"{path}: the model was saved with tokenizer {saved} but the tokenizer files there now "
                         f"give {tokenizer_fingerprint(tok)}; put the model's own tokenizer back")
    check_vocabulary(model, tok, str(path))
    return model, tok


def model_meta(path: Path | str) -> dict:
    """A model directory's ``idgenrec.json`` (empty for a model saved elsewhere, e.g. a downloaded t5-small): the
    trainer records there how its prompts were made (``max_history``), so that evaluation and serving make them
    the same way."""
    meta = Path(path) / MODEL_META
    return json.loads(meta.read_text()) if meta.is_file() else {}


def check_vocabulary(model, tokenizer, where: str) -> None:
    rows = model.get_input_embeddings().weight.shape[0]
    if rows < len(tokenizer):
        raise ValueError(f"{where}: the tokenizer has {len(tokenizer)} tokens but the model's embedding table only "
                         f"{rows}: they do not belong together")


def save_model(model, tokenizer, out: Path | str, extra: dict | None = None) -> None:
    """Model (safetensors) + tokenizer + ``idgenrec.json`` (tokenizer fingerprint, architecture) in one directory,
    written atomically."""
    from catalog.tokenizer import tokenizer_fingerprint
    from infra.atomic import atomic_dir

    with atomic_dir(out) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        meta = {"tokenizer_fingerprint": tokenizer_fingerprint(tokenizer), "architecture": architecture(model),
                **(extra or {})}
        (tmp / MODEL_META).write_text(json.dumps(meta, indent=2) + "\n")
