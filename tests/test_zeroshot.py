"""The zero-shot job on two tiny unseen domains: Ray tasks, per-dataset caches, resume; and the refusal to call an
evaluation zero-shot when a model has seen the dataset."""
import json

import pytest

from catalog.tokenizer import load_tokenizer
from cluster.zeroshot import ZeroShotConfig, run_zeroshot
from seq2seq.model import build_model, model_config, save_model
from tests.conftest import write_shared

pytestmark = pytest.mark.slow  # Ray tasks and ID jobs


def _domain(tmp_path, name, words, users):
    return write_shared(tmp_path / name, {f"{name[0]}{n}": [f"{name}{(n + k) % len(words)}" for k in range(4)]
                                          for n in range(users)},
                        [{"item_id": f"{name}{i}", "title": f"{name.lower()} {w}", "categories": [name]}
                         for i, w in enumerate(words)])


def test_two_domains_then_resume(tiny_generator, tmp_path):
    tok = load_tokenizer(tiny_generator)
    save_model(build_model(model_config("tiny"), tok), tok, tmp_path / "rec")
    games = _domain(tmp_path, "Games", "chess dice cards puzzle maze quiz trivia bingo dominoes".split(), 12)
    crafts = _domain(tmp_path, "Crafts", "yarn glue beads paint canvas brush felt".split(), 9)
    cfg = ZeroShotConfig(generator=tiny_generator, recommender=tmp_path / "rec", data=[crafts, games],
                         out=tmp_path / "zs", groups=4, beams=10, device="cpu")
    result = run_zeroshot(cfg)
    assert set(result) == {"Crafts", "Games"}
    assert result["Games"]["users"] == 12 and result["Crafts"]["users"] == 9
    games = result["Games"]
    assert {m["users"] for m in games["baselines"].values()} == {12}  # the baselines score the same users
    assert games["baselines"]["random"]["HR@10"] == pytest.approx(1.0)  # 9 items: all in a top 10
    assert {n for n, m in games["baselines"].items() if m["in_domain"]} == {"popularity", "markov"}
    assert games["items"] == 9 and 0.0 <= games["id_quality"]["id_words_in_text"] <= 1.0
    for name in ("Crafts", "Games"):
        assert (tmp_path / "zs" / name / "ids" / "item_ids.parquet").exists()
        assert (tmp_path / "zs" / name / "topk_test.parquet").exists()
        assert json.loads((tmp_path / "zs" / name / "metrics_test.json").read_text())["zero_shot"] is True
    kept = (tmp_path / "zs" / "Crafts" / "metrics_test.json").stat().st_mtime_ns
    ids_kept = (tmp_path / "zs" / "Games" / "ids" / "item_ids.parquet").stat().st_mtime_ns
    (tmp_path / "zs" / "Games" / "metrics_test.json").unlink()  # as if the job died before finishing Games
    again = run_zeroshot(cfg)
    assert again == result
    assert (tmp_path / "zs" / "Crafts" / "metrics_test.json").stat().st_mtime_ns == kept  # not redone
    assert (tmp_path / "zs" / "Games" / "ids" / "item_ids.parquet").stat().st_mtime_ns == ids_kept  # IDs cached
    assert json.loads((tmp_path / "zs" / "zeroshot.json").read_text()) == json.loads(json.dumps(result))


def test_a_dataset_the_generator_has_seen_is_not_zero_shot(tiny_generator, collide_catalog, tmp_path):
    """tiny_generator was warm-started on the catalog prepared from the folder `data`."""
    tok = load_tokenizer(tiny_generator)
    save_model(build_model(model_config("tiny"), tok), tok, tmp_path / "rec")
    cfg = ZeroShotConfig(generator=tiny_generator, recommender=tmp_path / "rec", data=[collide_catalog.parent / "data"],
                         out=tmp_path / "zs")
    with pytest.raises(ValueError, match="zeroshot: the generator .* includes held-out dataset data"):
        run_zeroshot(cfg)


def test_models_retrained_in_place_redo_their_steps(tiny_generator, tmp_path):
    """The same command after the recommender, then the generator, was replaced in its folder: the evaluation, then
    the IDs and the evaluation, run again; nothing is reused because of its path."""
    import shutil
    from dataclasses import replace

    import torch

    tok = load_tokenizer(tiny_generator)
    save_model(build_model(model_config("tiny"), tok), tok, tmp_path / "rec")
    shutil.copytree(tiny_generator, tmp_path / "gen")
    games = _domain(tmp_path, "Games", "chess dice cards puzzle maze quiz trivia bingo dominoes".split(), 12)
    cfg = ZeroShotConfig(generator=tmp_path / "gen", recommender=tmp_path / "rec", data=[games], out=tmp_path / "zs",
                         groups=4, beams=10, device="cpu", actors=1)
    run_zeroshot(cfg)
    d = tmp_path / "zs" / "Games"
    metrics_at, ids_at = ((d / "metrics_test.json").stat().st_mtime_ns,
                          (d / "ids" / "item_ids.parquet").stat().st_mtime_ns)
    torch.manual_seed(1)
    model = build_model(model_config("tiny"), tok)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    save_model(model, tok, tmp_path / "rec")  # another recommender, same folder
    run_zeroshot(cfg)
    assert (d / "metrics_test.json").stat().st_mtime_ns != metrics_at
    assert (d / "ids" / "item_ids.parquet").stat().st_mtime_ns == ids_at  # the generator did not change
    shutil.rmtree(tmp_path / "gen")
    save_model(model, tok, tmp_path / "gen")  # another generator, same folder
    run_zeroshot(replace(cfg))
    assert (d / "ids" / "item_ids.parquet").stat().st_mtime_ns != ids_at


def test_a_validation_domain_chooses_settings_on_its_valid_split_only(tiny_generator, tmp_path):
    """A validation domain (neither trained on nor a zero-shot target) scores its valid split and chooses the
    repeat bias and text prior there; the grids are refused on test, before any work starts."""
    tok = load_tokenizer(tiny_generator)
    save_model(build_model(model_config("tiny"), tok), tok, tmp_path / "rec")
    games = _domain(tmp_path, "Games", "chess dice cards puzzle maze quiz trivia bingo dominoes".split(), 12)
    cfg = ZeroShotConfig(generator=tiny_generator, recommender=tmp_path / "rec", data=[games], out=tmp_path / "zs",
                         groups=4, beams=10, device="cpu", split="valid", repeat_bias_grid=[0.0, 1.0],
                         text_prior_grid=[1.0, 8.0])
    games_v = run_zeroshot(cfg)["Games"]
    assert games_v["users"] == 12
    assert set(games_v["text_prior_ndcg10"]) == {"off", "1.0", "8.0"}
    assert set(games_v["repeat_bias_ndcg10"]) == {"off", "0.0", "1.0"}
    assert games_v["text_prior"] in (None, 1.0, 8.0) and games_v["repeat_bias"] in (None, 0.0, 1.0)
    assert len(games_v["explore_rates"]) == 10  # the chosen ranking's hit rate per rank, for the repeat mode
    d = tmp_path / "zs" / "Games"
    assert json.loads((d / "metrics_valid.json").read_text())["split"] == "valid"
    assert not (d / "metrics_test.json").exists()  # the test split is never looked at
    assert (tmp_path / "zs" / "zeroshot_valid.json").exists() and not (tmp_path / "zs" / "zeroshot.json").exists()
    from dataclasses import replace
    with pytest.raises(ValueError, match="never on test"):
        run_zeroshot(replace(cfg, split="test", out=tmp_path / "zs2"))
    assert not (tmp_path / "zs2").exists()
