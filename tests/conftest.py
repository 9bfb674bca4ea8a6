"""Shared test helpers: where the real datasets are, and tiny dataset writers."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")  # Ray's token authentication stays on, as for users

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("IDGENREC_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_dataset(name: str) -> Path:
    """A real dataset folder from ../shared/data, or skip the test where it is absent."""
    path = SHARED_DATA / name
    if not (path / "user_sequence.txt").exists():
        pytest.skip(f"{path} not available")
    return path


def write_shared(folder: Path, sequences: dict[str, list[str]], items: list[dict], gz: bool = True) -> Path:
    """A dataset in the shared layout."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "user_sequence.txt").write_text("".join(f"{u} {' '.join(s)}\n" for u, s in sequences.items()))
    data = "".join(json.dumps(i) + "\n" for i in items).encode()
    if gz:
        (folder / "items.jsonl.gz").write_bytes(gzip.compress(data))
    else:
        (folder / "items.jsonl").write_bytes(data)
    return folder


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    seqs = {"u1": ["a", "b", "c", "d"], "u2": ["b", "c", "e"], "u3": ["a", "e"]}
    items = [{"item_id": x, "title": f"Item {x.upper()} <b>bold</b>", "categories": ["Cat", x]} for x in "abcde"]
    return write_shared(tmp_path / "tiny", seqs, items)


def tokenizer_for_sample(name: str, folder: Path) -> Path:
    """A SentencePiece tokenizer of 600 tokens trained on a shipped sample's item text."""
    from catalog.prepare import PrepareConfig, prepare
    from catalog.sample import SAMPLE_DIR
    from catalog.tokenizer import build_tokenizer

    cat = prepare(PrepareConfig(data=SAMPLE_DIR / name, out=folder / "cat"))
    build_tokenizer(cat.texts, folder / "tok", vocab_size=600)
    return folder / "tok"


@pytest.fixture(scope="session")
def sample_tokenizer_dir(tmp_path_factory) -> Path:
    """A tokenizer trained on the shipped Toys sample."""
    return tokenizer_for_sample("Toys", tmp_path_factory.mktemp("sample_tok"))


@pytest.fixture(scope="session")
def other_tokenizer_dir(tmp_path_factory) -> Path:
    """Another tokenizer of the same size, trained on the Beauty sample: same vocabulary size, other token ids."""
    return tokenizer_for_sample("Beauty", tmp_path_factory.mktemp("other_tok"))


@pytest.fixture(scope="session")
def collide_catalog(tmp_path_factory) -> Path:
    """A catalog built to collide: 12 distinct texts, each shared by 4 items (48 items)."""
    from catalog.prepare import PrepareConfig, prepare

    d = tmp_path_factory.mktemp("collide")
    titles = ["lego star wars ship", "wooden puzzle farm animals", "magnetic drawing board", "rubber duck bath toy",
              "card game for families", "plush teddy bear brown", "toy train set wooden", "chess set travel",
              "kite rainbow large", "dollhouse furniture kit", "building blocks 100", "water gun summer"]
    items = [{"item_id": f"i{t:02d}{c}", "title": title, "categories": ["Toys"]}
             for t, title in enumerate(titles) for c in "abcd"]
    ids = [i["item_id"] for i in items]
    seqs = {f"u{n}": [ids[(n * 7 + k * 5) % len(ids)] for k in range(5)] for n in range(30)}
    write_shared(d / "data", seqs, items)
    prepare(PrepareConfig(data=d / "data", out=d / "catalog"))
    return d / "catalog"


@pytest.fixture(scope="session")
def tiny_generator(sample_tokenizer_dir, collide_catalog, tmp_path_factory) -> Path:
    """A tiny T5 ID generator, warm-started for a few seconds on the colliding catalog (so that its IDs depend on
    the text, as a real generator's do), saved as a local model directory."""
    from idgen.warmstart import WarmStartConfig, warmstart

    out = tmp_path_factory.mktemp("gen") / "generator"
    warmstart(WarmStartConfig(catalog=[collide_catalog], tokenizer=sample_tokenizer_dir, out=out, model_size="tiny",
                              steps=300, batch_size=16, lr=1e-2))
    return out


@pytest.fixture(scope="session")
def word_ids(collide_catalog, sample_tokenizer_dir, tmp_path_factory) -> Path:
    """An ID folder for the colliding catalog with simple unique IDs (no generator needed)."""
    from catalog.id_table import ITEM_TABLE, write_id_table
    from catalog.store import read_catalog
    from catalog.tokenizer import load_tokenizer

    cat, tok = read_catalog(collide_catalog), load_tokenizer(sample_tokenizer_dir)
    words = ["red", "blue", "green", "small", "big", "toy", "car", "doll"]
    ids = [f"{words[i % 8]} {words[(i // 8) % 8]} {i}" for i in range(len(cat.item_ids))]
    out = tmp_path_factory.mktemp("word_ids")
    write_id_table(out / ITEM_TABLE, {"item_id": cat.item_ids}, ids, tok)
    return out
