"""Alternate training end to end on a tiny catalog (real Ray ID job, real deepspeed launcher), and the paper's
ID-only ablation (the recommender is never trained)."""
import json

import pyarrow.parquet as pq
import pytest
import torch

from cluster.alternate import AlternateConfig, run_alternate
from cluster.idjob import IDJobConfig
from pretrain.shards import ShardsConfig
from pretrain.train import TrainConfig, initial_model
from seq2seq.model import load_model

pytestmark = pytest.mark.slow  # the deepspeed launcher and Ray, every round


def _cfg(tmp_path, collide_catalog, tiny_generator, **kw):
    train_cfg = tmp_path / "train.yaml"
    train_cfg.write_text("model_size: tiny\nmicro_batch: 8\nepochs: 1\nlr: 0.003\neval_beams: 10\n")
    return AlternateConfig(catalog=collide_catalog, generator=tiny_generator, out=tmp_path / "run",
                           train_config=train_cfg, rounds=2, procs=2, generator_steps=3, generator_lr=1e-3,
                           generator_batch_size=4, ids=IDJobConfig(actors=1, groups=4),
                           shards=ShardsConfig(samples_per_shard=16), device="cpu", **kw)


def _check_selection(result):
    """Every round scored on valid and test; the final round is the one with the best validation NDCG@10."""
    for r in result["rounds"]:
        assert {"HR@5", "HR@10", "NDCG@5", "NDCG@10"} <= set(r["valid"]) and r["test"]["users"] == 30
    best = max(result["rounds"], key=lambda r: r["valid"]["NDCG@10"])
    assert result["final"]["round"] == best["round"] and result["final"]["test"] == best["test"]


def test_two_rounds_change_the_generator_and_keep_ids_unique(tiny_generator, collide_catalog, tmp_path):
    cfg = _cfg(tmp_path, collide_catalog, tiny_generator)
    out = cfg.out
    result = run_alternate(cfg)
    assert [r["round"] for r in result["rounds"]] == [0, 1]
    assert result["rounds"][1]["generator_phase"]["steps"] == 3
    for r in (0, 1):
        ids = pq.read_table(out / f"round{r}" / "ids" / "item_ids.parquet").to_pydict()["id"]
        assert len(set(ids)) == len(ids) == 48
        assert (out / f"round{r}" / "recommender" / "best" / "model.safetensors").exists()
    # round 1's recommender started from round 0's best and was trained on round 1's IDs
    assert result["rounds"][1]["recommender"].endswith("round1/recommender/best")
    assert result["rounds"][1]["ids"].endswith("round1/ids")
    _check_selection(result)
    assert json.loads((out / "alternate.json").read_text())["final"] == result["final"]
    again = run_alternate(cfg)  # everything is done: a rerun reuses every step
    assert again["rounds"][1]["test"] == result["rounds"][1]["test"]


def test_generator_only_never_trains_the_recommender(tiny_generator, collide_catalog, tmp_path):
    """The paper's ID-only: only the generator learns, through the initial recommender, which stays as built."""
    cfg = _cfg(tmp_path, collide_catalog, tiny_generator, mode="generator_only")
    result = run_alternate(cfg)
    out = cfg.out
    assert not any(out.glob("round*/recommender")) and not any(out.glob("round*/shards"))
    frozen = out / "recommender_init"
    assert all(r["recommender"] == str(frozen) for r in result["rounds"])
    assert result["rounds"][1]["generator_phase"]["steps"] == 3 and (out / "round1" / "generator").exists()
    # the recommender used in every round is the initial model the train config names, untouched
    fresh, _ = initial_model(TrainConfig(model_size="tiny", tokenizer=tiny_generator, seed=0))
    used = load_model(frozen).state_dict()
    assert all(torch.equal(used[k], v) for k, v in fresh.state_dict().items())
    # the final IDs are those of the last generator, and each round's IDs were evaluated
    assert (out / "round1" / "ids" / "item_ids.parquet").exists()
    assert (out / "round1" / "eval" / "metrics_valid.json").exists()
    _check_selection(result)
