"""Alternate training end to end on a tiny catalog: real Ray ID job, real deepspeed launcher, two rounds."""
import json

import pyarrow.parquet as pq

from cluster.alternate import AlternateConfig, run_alternate


def test_two_rounds_change_the_generator_and_keep_ids_unique(tiny_generator, collide_catalog, tmp_path):
    train_cfg = tmp_path / "train.yaml"
    train_cfg.write_text("model_size: tiny\nmicro_batch: 8\nepochs: 1\nlr: 0.003\neval_beams: 10\n")
    out = tmp_path / "run"
    cfg = AlternateConfig(catalog=collide_catalog, generator=tiny_generator, out=out, train_config=train_cfg,
                          rounds=2, actors=1, procs=2, generator_steps=3, generator_lr=1e-3,
                          generator_batch_size=4, groups=4, samples_per_shard=16)
    result = run_alternate(cfg)
    assert [r["round"] for r in result["rounds"]] == [0, 1]
    assert result["rounds"][1]["generator_phase"]["steps"] == 3
    for r in (0, 1):
        ids = pq.read_table(out / f"round{r}" / "ids" / "item_ids.parquet").to_pydict()["id"]
        assert len(set(ids)) == len(ids) == 48
        assert (out / f"round{r}" / "recommender" / "best" / "model.safetensors").exists()
        assert "HR@10" in result["rounds"][r]["test_at_best"]
    # round 1's recommender started from round 0's best
    assert json.loads((out / "alternate.json").read_text())["final_recommender"].endswith("round1/recommender/best")
    again = run_alternate(cfg)  # everything is done: a rerun reuses every step
    assert again["rounds"][1]["test_at_best"] == result["rounds"][1]["test_at_best"]
