import pytest

from catalog.tokenizer import load_tokenizer
from cluster.cli import main


def test_round_trip_and_t5_specials(sample_tokenizer_dir):
    tok = load_tokenizer(sample_tokenizer_dir)
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert len(tok) == 600
    for text in ("magnetic tabletop learning easel", "lego star wars 7 pieces", "dover coloring book"):
        ids = tok(text).input_ids
        assert ids[-1] == tok.eos_token_id and tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True) == text


def test_directory_reloads_with_same_ids_as_sentencepiece(sample_tokenizer_dir):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    sp = spm.SentencePieceProcessor(model_file=str(sample_tokenizer_dir / "spiece.model"))
    auto = AutoTokenizer.from_pretrained(str(sample_tokenizer_dir), local_files_only=True)
    text = "Little red tool box with magnets"
    assert auto(text, add_special_tokens=False).input_ids == sp.encode(text)


def test_cli_copies_a_local_pretrained_tokenizer(sample_tokenizer_dir, tmp_path):
    assert main(["tokenizer", "--pretrained", str(sample_tokenizer_dir), "--out", str(tmp_path / "copy")]) == 0
    assert len(load_tokenizer(tmp_path / "copy")) == 600
    assert main(["tokenizer", "--pretrained", str(tmp_path / "missing"), "--out", str(tmp_path / "c2")]) == 2


def test_fingerprint_follows_the_token_ids(sample_tokenizer_dir, other_tokenizer_dir, tmp_path):
    from catalog.tokenizer import tokenizer_fingerprint

    a = load_tokenizer(sample_tokenizer_dir)
    a.save_pretrained(str(tmp_path / "copy"))
    assert tokenizer_fingerprint(load_tokenizer(tmp_path / "copy")) == tokenizer_fingerprint(a)  # copies agree
    b = load_tokenizer(other_tokenizer_dir)
    assert len(a) == len(b) and tokenizer_fingerprint(a) != tokenizer_fingerprint(b)  # same size, other ids


def test_heldout_catalogs_are_refused_as_training_text(tmp_path):
    """Zero-shot must stay zero-shot: the vocabulary may not be trained on a held-out dataset's text."""
    import json

    from catalog.prepare import PrepareConfig, prepare
    from catalog.sample import SAMPLE_DIR
    from idgen.warmstart import WarmStartConfig, warmstart

    for name in ("Beauty", "Toys"):
        prepare(PrepareConfig(data=SAMPLE_DIR / name, out=tmp_path / name, domain=name))
    base = ["tokenizer", "--vocab-size", "300", "--heldout", str(tmp_path / "Toys")]
    assert main([*base, "--catalog", str(tmp_path / "Beauty"), str(tmp_path / "Toys"), "--out",
                 str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()
    assert main([*base, "--catalog", str(tmp_path / "Beauty"), "--out", str(tmp_path / "tok")]) == 0
    assert json.loads((tmp_path / "tok" / "idgenrec.json").read_text())["domains_seen"] == ["Beauty"]
    with pytest.raises(ValueError, match="warm start: .* includes held-out dataset Toys"):
        warmstart(WarmStartConfig(catalog=[tmp_path / "Toys"], tokenizer=tmp_path / "tok", out=tmp_path / "g",
                                  heldout=[SAMPLE_DIR / "Toys"], steps=0))


def test_a_trained_tokenizer_is_the_same_whatever_the_core_count(tmp_path, monkeypatch):
    """SentencePiece's model depends on its thread count: a tokenizer trained on a 16-core machine once tokenized
    other pieces than one trained on 2 cores from the same text, and every step after it differed."""
    import os

    import sentencepiece as spm

    from catalog.prepare import PrepareConfig, prepare
    from catalog.sample import SAMPLE_DIR
    from catalog.tokenizer import train_sentencepiece

    texts = prepare(PrepareConfig(data=SAMPLE_DIR / "Toys", out=tmp_path / "cat")).texts
    models = []
    for cores in (1, 16):
        monkeypatch.setattr(os, "cpu_count", lambda: cores)
        sp = spm.SentencePieceProcessor(model_file=str(train_sentencepiece(texts, tmp_path / f"sp{cores}", 600)))
        models.append([(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())])
    assert models[0] == models[1]
