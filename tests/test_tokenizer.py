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
