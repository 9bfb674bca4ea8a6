from pathlib import Path

import pytest

from catalog.prepare import PrepareConfig, prepare
from catalog.sample import SAMPLE_DIR
from catalog.tokenizer import build_tokenizer, load_tokenizer
from cluster.cli import main


@pytest.fixture(scope="module")
def sample_tokenizer(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tok")
    cat = prepare(PrepareConfig(data=SAMPLE_DIR / "Toys", out=d / "cat"))
    build_tokenizer(cat.texts, d / "tok", vocab_size=1000)
    return d / "tok"


def test_round_trip_and_t5_specials(sample_tokenizer):
    tok = load_tokenizer(sample_tokenizer)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert len(tok) == 1000
    for text in ("magnetic tabletop learning easel", "lego star wars 7 pieces", "dover coloring book"):
        ids = tok(text).input_ids
        assert ids[-1] == tok.eos_token_id and tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True) == text


def test_directory_reloads_with_same_ids_as_sentencepiece(sample_tokenizer):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    sp = spm.SentencePieceProcessor(model_file=str(sample_tokenizer / "spiece.model"))
    auto = AutoTokenizer.from_pretrained(str(sample_tokenizer), local_files_only=True)
    text = "Little red tool box with magnets"
    assert auto(text, add_special_tokens=False).input_ids == sp.encode(text)


def test_cli_copies_a_local_pretrained_tokenizer(sample_tokenizer, tmp_path):
    assert main(["tokenizer", "--pretrained", str(sample_tokenizer), "--out", str(tmp_path / "copy")]) == 0
    assert len(load_tokenizer(tmp_path / "copy")) == 1000
    assert main(["tokenizer", "--pretrained", str(tmp_path / "missing"), "--out", str(tmp_path / "c2")]) == 2
