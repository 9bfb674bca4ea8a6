"""Resumable steps are keyed on the content of their inputs, never on their paths: a generator or recommender
retrained in place makes every step that used it redo its work (or refuse), and nothing stale comes back."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from catalog.id_table import ITEM_TABLE, id_folder_digest, legacy_id_folder_digest, read_id_table
from catalog.sample import SAMPLE_DIR
from catalog.tokenizer import TokenizerConfig
from cluster.add_items import AddItemsConfig, run_add_items
from cluster.idjob import IDJobConfig, run_ids
from cluster.recommend import RecommendConfig, plan_hash
from cluster.standard import StandardConfig, run_standard
from idgen.warmstart import WarmStartConfig, warmstart
from infra.fingerprint import changed_inputs, content_digest, read_stamp, step_done, write_stamp
from pretrain.shards import ShardsConfig, write_shards
from pretrain.train import TrainConfig, train
from tests.conftest import write_shared


@pytest.fixture(scope="module")
def other_generator(collide_catalog, sample_tokenizer_dir, tmp_path_factory) -> Path:
    """A second generator for the same catalog and tokenizer (another seed): other IDs."""
    out = tmp_path_factory.mktemp("gen2") / "generator"
    warmstart(WarmStartConfig(catalog=[collide_catalog], tokenizer=sample_tokenizer_dir, out=out, model_size="tiny",
                              steps=300, batch_size=16, lr=1e-2, seed=1))
    return out


def _replace_in_place(folder: Path, new: Path) -> None:
    """What retraining into the same folder does: other files at the same path."""
    shutil.rmtree(folder)
    shutil.copytree(new, folder)


def _ids(catalog, model, out):
    return IDJobConfig(catalog=catalog, out=out, model=model, actors=0, shard_size=8, batch_size=8, groups=4)


def test_fingerprints_follow_content_not_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "w.bin").write_bytes(b"one")
    (tmp_path / "a" / ".inputs.json").write_text("{}")  # stamps are not content
    first = content_digest(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "moved")
    assert content_digest(tmp_path / "moved") == first
    (tmp_path / "a" / "w.bin").write_bytes(b"two")
    assert content_digest(tmp_path / "a") != first
    write_stamp(tmp_path / "out", {"model": first})
    assert step_done("x", tmp_path / "out", {"model": first}, complete=True)
    assert not step_done("x", tmp_path / "out", {"model": content_digest(tmp_path / "a")}, complete=True)
    assert changed_inputs(tmp_path / "out", {"model": "other", "data": "d"}) == ["data", "model"]


def test_ids_redone_when_the_generator_is_retrained_in_place(tiny_generator, other_generator, collide_catalog,
                                                            tmp_path):
    gen = tmp_path / "generator"
    shutil.copytree(tiny_generator, gen)
    run_ids(_ids(collide_catalog, gen, tmp_path / "ids"))
    before = read_id_table(tmp_path / "ids" / ITEM_TABLE)
    _replace_in_place(gen, other_generator)
    run_ids(_ids(collide_catalog, gen, tmp_path / "ids"))  # the same command again
    run_ids(_ids(collide_catalog, other_generator, tmp_path / "fresh"))
    after = read_id_table(tmp_path / "ids" / ITEM_TABLE)
    assert after == read_id_table(tmp_path / "fresh" / ITEM_TABLE)
    assert after["id"] != before["id"]


def test_a_moved_id_job_resumes(tiny_generator, collide_catalog, tmp_path):
    """The job's settings key holds no path: a whole run folder moved elsewhere resumes its work (before, the
    catalog's and generator's paths were in it, and the moved job was refused as 'another configuration')."""
    run = tmp_path / "run"
    shutil.copytree(collide_catalog, run / "catalog")
    shutil.copytree(tiny_generator, run / "generator")
    run_ids(_ids(run / "catalog", run / "generator", run / "ids"))
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(run, moved)
    assert _ids(run / "catalog", run / "generator", run / "ids").result_hash() == \
        _ids(moved / "catalog", moved / "generator", moved / "ids").result_hash()
    run_ids(_ids(moved / "catalog", moved / "generator", moved / "ids"))  # resumes, no 'another configuration'
    assert read_id_table(moved / "ids" / ITEM_TABLE) == read_id_table(run / "ids" / ITEM_TABLE)
    assert _ids(run / "catalog", run / "generator", run / "ids").result_hash() != \
        replace(_ids(run / "catalog", run / "generator", run / "ids"), groups=2).result_hash()


def test_add_items_and_recommend_chunks_are_keyed_on_the_model(tiny_generator, other_generator, collide_catalog,
                                                               tmp_path):
    gen = tmp_path / "generator"
    shutil.copytree(tiny_generator, gen)
    run_ids(_ids(collide_catalog, gen, tmp_path / "ids"))
    kept = tmp_path / "kept"
    shutil.copytree(tmp_path / "ids", kept)
    new = write_shared(tmp_path / "new", {}, [{"item_id": "n1", "title": "red fire truck", "categories": ["Toys"]}])
    cfg = AddItemsConfig(ids=tmp_path / "ids", items=new / "items.jsonl.gz", model=gen)
    run_add_items(cfg)
    work_before = {p.name for p in (tmp_path / "ids" / "work").glob("add_*")}
    _replace_in_place(tmp_path / "ids", kept)  # the table as it was, the same new item, another generator in place
    _replace_in_place(gen, other_generator)
    run_add_items(cfg)
    work_after = {p.name for p in (tmp_path / "ids" / "work").glob("add_*")}
    assert work_before and work_after and not work_before & work_after  # the old work was not resumed

    rec = RecommendConfig(model=gen, ids=tmp_path / "ids", out=tmp_path / "r.jsonl", actors=2)
    histories = [("u", ["i00a"])]
    first = plan_hash(rec, histories)
    _replace_in_place(gen, tiny_generator)
    assert plan_hash(rec, histories) != first  # kept chunks of the other model are not reused
    assert plan_hash(replace(rec, out=tmp_path / "elsewhere.jsonl"), histories) == plan_hash(rec, histories)


def test_training_refuses_checkpoints_of_other_inputs(tiny_generator, other_generator, collide_catalog, word_ids,
                                                     tmp_path):
    shards = tmp_path / "shards"
    write_shards(ShardsConfig(catalog=[collide_catalog], ids=[word_ids], out=shards, samples_per_shard=7))
    init = tmp_path / "init"
    shutil.copytree(tiny_generator, init)
    cfg = TrainConfig(shards=shards, out=tmp_path / "run", init=init, engine="torch", zero_stage=0, micro_batch=8,
                      max_steps=2, save_every=1)
    train(cfg)
    _replace_in_place(init, other_generator)
    with pytest.raises(ValueError, match="checkpoints of a run with other inputs .*init"):
        train(replace(cfg, max_steps=4))


@pytest.mark.slow
def test_standard_recipe_redoes_every_step_after_a_changed_generator(tmp_path):
    """A tiny `idgenrec standard` run; then again with a generator trained longer into the same folder: the IDs, the
    shards and the recommender run again (the old models kept aside), the steps before it are skipped."""
    std = StandardConfig(data=SAMPLE_DIR / "Toys", out=tmp_path / "std", users=60, with_sasrec=False, device="cpu",
                         tokenizer=TokenizerConfig(vocab_size=600), ids=IDJobConfig(actors=0),
                         warmstart=WarmStartConfig(model_size="tiny", steps=300, min_epochs=0, batch_size=16, lr=1e-2))
    rec = TrainConfig(model_size="tiny", engine="torch", zero_stage=0, micro_batch=16, epochs=1, save_every=10 ** 6,
                      valid_max_users=20, test_max_users=20, eval_beams=10, eval_batch_size=32)
    first = run_standard(std, rec)
    assert first["ours"]["test"]["users"] == 20 and first["ours"]["test"]["partial"]
    assert first["text_similarity"]["test"]["users"] == first["markov"]["test"]["users"] > 0  # a baseline row too
    ids_before = read_id_table(tmp_path / "std" / "ids" / ITEM_TABLE)
    catalog_stamp = (tmp_path / "std" / "catalog" / ".inputs.json").read_bytes()
    _same_table_remade_or_stamped_the_old_way_is_not_retrained(std, rec, tmp_path / "std")
    run_standard(replace(std, warmstart=replace(std.warmstart, steps=400)))  # trained longer, in the same folder
    assert (tmp_path / "std" / "catalog" / ".inputs.json").read_bytes() == catalog_stamp  # steps before: skipped
    assert (tmp_path / "std" / "generator.stale-1" / "warmstart.json").exists()  # the old generator kept aside
    assert read_id_table(tmp_path / "std" / "ids" / ITEM_TABLE)["id"] != ids_before["id"]
    assert (tmp_path / "std" / "recommender.stale-1" / "summary.json").exists()
    assert (tmp_path / "std" / "recommender" / "summary.json").exists()
    manifest = (tmp_path / "std" / "shards" / ".inputs.json").read_text()
    assert id_folder_digest(tmp_path / "std" / "ids") in manifest


def _same_table_remade_or_stamped_the_old_way_is_not_retrained(std, rec, out: Path) -> None:
    """The ID table made again from the same inputs has other seconds in its summary.json: not other content. A
    stamp that holds the ID folder's fingerprint of before summary.json left it is restamped, not redone."""
    summary = json.loads((out / "ids" / "summary.json").read_text())
    (out / "ids" / "summary.json").write_text(json.dumps(summary | {"wall_seconds": summary["wall_seconds"] + 9}))
    for step in ("shards", "recommender"):  # as written before the rule changed
        stamp = read_stamp(out / step)
        write_stamp(out / step, stamp | {"ids": legacy_id_folder_digest(out / "ids")})
    trained = (out / "recommender" / "summary.json").stat().st_mtime_ns
    run_standard(std, rec)
    assert (out / "recommender" / "summary.json").stat().st_mtime_ns == trained  # neither retrained nor re-tested
    assert not (out / "recommender.stale-1").exists() and not (out / "shards.stale-1").exists()
    for step in ("shards", "recommender"):
        assert read_stamp(out / step)["ids"] == id_folder_digest(out / "ids")


def test_lever_grids_chosen_after_training_leave_the_training_fingerprint_alone():
    """``eval_id_prior_grid`` changes no trained weight: a recommender trained before it existed (or with another
    grid) keeps its fingerprint, and the standard recipe only makes the missing choice; a training field does not."""
    from cluster.standard import missing_levers, training_settings

    base = TrainConfig()
    with_grid = replace(base, eval_id_prior_grid=[0.5, 1.0])
    assert training_settings(with_grid) == training_settings(base)
    assert training_settings(replace(base, lr=base.lr * 2)) != training_settings(base)
    assert missing_levers(with_grid, {"repeat_bias": {"chosen": None}}) == ["id_prior"]
    assert missing_levers(with_grid, {"repeat_bias": {}, "id_prior": {}}) == []
    assert missing_levers(replace(base, eval_repeat_bias_grid=[]), {}) == []


def test_a_pipelines_id_step_sets_aside_a_table_of_other_settings(tiny_generator, collide_catalog, tmp_path):
    """The ID job alone refuses a folder holding work of other settings (a user's own --out); a pipeline step that
    found its inputs changed keeps the old table aside (``ids.stale-1``) and makes it again."""
    from cluster.idjob import run_ids_step

    first = _ids(collide_catalog, tiny_generator, tmp_path / "ids")
    inputs = {"catalog": content_digest(collide_catalog), "model": content_digest(tiny_generator),
              "settings": first.result_hash()}
    run_ids_step(first, inputs)
    other = replace(first, lambda_step=2.0)
    with pytest.raises(ValueError, match="another configuration"):
        run_ids(other)
    run_ids_step(other, inputs | {"settings": other.result_hash()})
    assert (tmp_path / "ids.stale-1" / ITEM_TABLE).exists()  # kept, not lost
    run_ids(replace(other, out=tmp_path / "fresh"))
    assert read_id_table(tmp_path / "ids" / ITEM_TABLE) == read_id_table(tmp_path / "fresh" / ITEM_TABLE)
    assert not step_done("ids", tmp_path / "ids", inputs, complete=True)  # stamped with the new settings


def test_a_table_stamped_with_the_old_settings_key_is_restamped_not_made_again(tmp_path):
    """Tables stamped before the settings key left out paths: the same settings and paths restamp (a table made
    again has other seconds in its summary.json, so every step keyed on its folder would be redone); other settings
    do not."""
    from cluster.idjob import LEGACY_NOT_SETTINGS, ids_done

    cfg = IDJobConfig(catalog=tmp_path / "catalog", out=tmp_path / "ids", model=tmp_path / "generator", actors=0)
    (tmp_path / "ids").mkdir()
    (tmp_path / "ids" / ITEM_TABLE).write_bytes(b"a table")
    inputs = {"catalog": "c1", "model": "m1", "settings": cfg.result_hash()}
    write_stamp(tmp_path / "ids", inputs | {"settings": cfg.result_hash(LEGACY_NOT_SETTINGS)})
    assert ids_done("ids", cfg, inputs) and ids_done("ids", cfg, inputs)  # restamped once, then simply done
    other = replace(cfg, groups=5)
    write_stamp(tmp_path / "ids", inputs | {"settings": other.result_hash(LEGACY_NOT_SETTINGS)})
    assert not ids_done("ids", cfg, inputs)
    write_stamp(tmp_path / "ids", inputs | {"model": "m2", "settings": cfg.result_hash(LEGACY_NOT_SETTINGS)})
    assert not ids_done("ids", cfg, inputs)  # another generator: made again
