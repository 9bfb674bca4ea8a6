"""The trainer for real: the deepspeed launcher with 2 CPU processes (gloo) over WebDataset shards, and the
one-process torch engine in a Python without DeepSpeed."""
import json
import os
import random
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from cluster.cli import main as idgenrec
from pretrain.data import length_grouped, prefetch
from pretrain.launch import launch_train, train_command
from pretrain.shards import read_manifest
from tests.crash import kill_when


@pytest.fixture(scope="module")
def shards(collide_catalog, word_ids, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "train"
    assert idgenrec(["shards", "--catalog", str(collide_catalog), "--ids", str(word_ids), "--out", str(out),
                     "--samples-per-shard", "7"]) == 0
    return out


def _launch_args(shards, tok, out, *extra) -> list:
    return ["--shards", shards, "--out", out, "--tokenizer", tok, "--micro-batch", 4, "--log-every", 1, *extra]


PORT = ["--master_port", 29500 + os.getpid() % 1000]
ONE_PROCESS_ENV = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
LINEAR = ("--anneal-patience", "0")  # the linear decay over the whole run, not the default


def _launch(shards, tok, out, *extra, procs=2):
    return launch_train(procs, _launch_args(shards, tok, out, *extra), launcher_args=PORT, capture_output=True,
                        text=True, timeout=600)


def _latest(run) -> str:
    """The tag of the newest complete checkpoint (``checkpoints/latest``: stepNNNNNNNN or epochNNN), '' before one."""
    try:
        return (run / "checkpoints" / "latest").read_text().strip()
    except OSError:
        return ""


def _past_step(run, step: int) -> bool:
    tag = _latest(run)
    return tag.startswith("step") and int(tag[4:]) >= step


def test_shards_manifest_and_determinism(shards, collide_catalog, word_ids, tmp_path):
    m = read_manifest(shards)
    assert m["samples"] == 60 == sum(s["samples"] for s in m["shards"]) and m["per_domain"] == {"data": 60}
    assert len(m["shards"]) == 9
    again = tmp_path / "again"
    idgenrec(["shards", "--catalog", str(collide_catalog), "--ids", str(word_ids), "--out", str(again),
              "--samples-per-shard", "7"])
    for s in m["shards"]:
        assert (again / s["name"]).read_bytes() == (shards / s["name"]).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("stage", [1, 2, 3])
def test_two_ranks_each_sample_once_per_epoch(shards, sample_tokenizer_dir, tmp_path, stage):
    run = _launch(shards, sample_tokenizer_dir, tmp_path, "--zero-stage", str(stage), "--epochs", "2",
                  "--log-samples")
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    keys = {f"s{i:09d}" for i in range(60)}
    for epoch in (0, 1):
        seen = [k for r in (0, 1) for k in (tmp_path / f"samples_rank{r}_epoch{epoch}.txt").read_text().split()]
        assert sorted(seen) == sorted(keys)  # every sample exactly once across the two ranks
        assert (tmp_path / f"samples_rank0_epoch{epoch}.txt").read_text() != ""
    log = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"] and {"lr", "samples_per_s", "step"} <= set(log[0])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["zero_stage"] == stage
    weights = load_file(str(tmp_path / "best" / "model.safetensors"))
    assert weights and all(v.numel() > 0 for v in weights.values())  # full (gathered) parameters under ZeRO-3


@pytest.mark.slow
def test_kill_minus_9_then_resume_equals_uninterrupted(shards, sample_tokenizer_dir, tmp_path):
    """The launcher and both ranks are SIGKILLed (from outside, as a crash) after the checkpoint of step 20 (epoch 1
    of 3, 15 steps each); the same command resumes from the newest checkpoint and ends with the same parameters."""
    args = ("--zero-stage", "1", "--epochs", "3", "--save-every", "2", "--micro-batch", "2")
    full = _launch(shards, sample_tokenizer_dir, tmp_path / "full", *args)
    assert full.returncode == 0, full.stderr[-3000:]
    run = tmp_path / "resumed"
    cmd = train_command(2, _launch_args(shards, sample_tokenizer_dir, run, *args), PORT)
    assert kill_when(cmd, lambda: _past_step(run, 20)) == -9
    at = _latest(run)
    assert at and not (run / "summary.json").exists()  # killed mid-run
    resumed = _launch(shards, sample_tokenizer_dir, run, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {at}" in resumed.stdout + resumed.stderr
    a = load_file(str(tmp_path / "full" / "epoch002" / "model.safetensors"))
    b = load_file(str(run / "epoch002" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("select", [False, True], ids=["bias-after-training", "select-with-repeats"])
def test_single_process_without_launcher(shards, sample_tokenizer_dir, collide_catalog, word_ids, tmp_path, select):
    run = subprocess.run([sys.executable, "-m", "pretrain.train", "--shards", str(shards), "--out", str(tmp_path),
                          "--tokenizer", str(sample_tokenizer_dir), "--micro-batch", "8", "--grad-accum", "2",
                          "--valid-catalog", str(collide_catalog), "--valid-ids", str(word_ids),
                          "--eval-repeat-bias-grid", "0", "3",
                          *(["--select-with-repeats"] if select else ["--eval-id-prior-grid", "0.5", "1"])],
                         capture_output=True, text=True, timeout=600, env=ONE_PROCESS_ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 1 and summary["best"]["epoch"] == 0
    assert {"HR@10", "NDCG@10"} <= set(summary["test_at_best"])
    repeats = summary["repeat_bias"]  # chosen on validation, then used on test
    assert set(repeats["valid_ndcg10"]) == {"off", "0.0", "3.0"} and repeats["chosen"] in (None, 0.0, 3.0)
    assert summary["test_at_best"].get("repeat_bias") == repeats["chosen"]
    valid = next(h["valid"] for h in summary["history"] if h["epoch"] == summary["best"]["epoch"])
    if select:  # each epoch chose its bias and is selected on NDCG@10 at that bias; the best epoch's choice is kept
        assert all(h["valid"]["NDCG@10"] == pytest.approx(max(h["valid"]["repeat_bias_ndcg10"].values()))
                   for h in summary["history"])
        assert repeats["valid"] == valid
    else:  # epochs are selected on the beams alone; the bias and the ID prior are chosen afterwards, together
        assert "repeat_bias" not in valid and "id_prior" not in valid
        prior = summary["id_prior"]
        assert set(prior["valid_ndcg10"]) == {"off", "0.5", "1.0"} and prior["chosen"] in (None, 0.5, 1.0)
        assert summary["test_at_best"].get("id_prior") == prior["chosen"] and prior["valid"] == repeats["valid"]
        assert prior["valid"]["NDCG@10"] == pytest.approx(max(prior["valid_ndcg10"].values()))
    meta = json.loads((tmp_path / "best" / "idgenrec.json").read_text())
    assert meta["max_history"] == json.loads((shards / "manifest.json").read_text())["max_history"]


NO_DEEPSPEED = ("import sys; sys.modules['deepspeed'] = sys.modules['ray'] = None; from pretrain.train import main; "
                "sys.exit(main())")


def _torch_engine_cmd(shards, tok, out, *extra) -> list:
    """The one-process engine, in a Python where DeepSpeed and Ray cannot be imported (as on the GPU machine)."""
    return [sys.executable, "-c", NO_DEEPSPEED, "--engine", "torch", "--zero-stage", "0", "--shards", str(shards),
            "--out", str(out), "--tokenizer", str(tok), "--micro-batch", "2", "--log-every", "1", *extra]


def _torch_engine(shards, tok, out, *extra):
    return subprocess.run(_torch_engine_cmd(shards, tok, out, *extra), capture_output=True, text=True, timeout=600,
                          env=ONE_PROCESS_ENV)


@pytest.mark.slow
def test_torch_engine_kill_then_resume_equals_uninterrupted(shards, sample_tokenizer_dir, tmp_path):
    args = ("--epochs", "3", "--save-every", "4", "--grad-accum", "2", *LINEAR)  # 15 optimizer steps an epoch
    full = _torch_engine(shards, sample_tokenizer_dir, tmp_path / "full", *args)
    assert full.returncode == 0, full.stderr[-3000:]
    run = tmp_path / "resumed"
    cmd = _torch_engine_cmd(shards, sample_tokenizer_dir, run, *args)
    assert kill_when(cmd, lambda: _past_step(run, 20), env=ONE_PROCESS_ENV) == -9
    at = _latest(run)
    assert at and not (run / "summary.json").exists()  # killed mid-run
    resumed = _torch_engine(shards, sample_tokenizer_dir, run, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {at}" in resumed.stderr
    a = load_file(str(tmp_path / "full" / "epoch002" / "model.safetensors"))
    b = load_file(str(run / "epoch002" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"]
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["engine"] == "torch" and summary["world_size"] == 1 and summary["stopped_early"] is None


def test_time_budget_ends_training_early_with_an_export(shards, sample_tokenizer_dir, tmp_path):
    run = _torch_engine(shards, sample_tokenizer_dir, tmp_path, "--epochs", "50", "--time-budget-s", "0.001", *LINEAR)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stopped_early"].startswith("time budget") and len(summary["history"]) == 1
    assert (tmp_path / "best" / "model.safetensors").exists()


def test_a_time_limit_never_reshapes_the_schedule(shards, sample_tokenizer_dir, tmp_path):
    """The same seed with and without a (never reached) time limit: the same learning rates, losses and weights,
    step for step (the schedule once followed the clock, so a run beside another job took other steps)."""
    runs = {}
    for name, extra in (("plain", ()), ("limited", ("--time-budget-s", "100000"))):
        run = _torch_engine(shards, sample_tokenizer_dir, tmp_path / name, "--epochs", "2", *extra)
        assert run.returncode == 0, run.stderr[-3000:]
        log = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        runs[name] = ([(r["step"], r["lr"], r["loss"]) for r in log],
                      load_file(str(tmp_path / name / "epoch001" / "model.safetensors")))
    (steps, weights), (steps_limited, weights_limited) = runs["plain"], runs["limited"]
    assert steps == steps_limited and len(steps) > 10
    assert all(torch.equal(weights[k], weights_limited[k]) for k in weights)


def test_successor_targets_run_through_the_trainer(shards, sample_tokenizer_dir, tmp_path):
    """The trainer builds the successor table from the shards and draws targets from it: in this catalog every item
    is followed by one item only, so the drawn targets are the shards' own and the run is step for step the plain
    one (a share that changed them is tested in test_levers)."""
    logs = {}
    for name, extra in (("plain", ()), ("successors", ("--successor-targets", "1.0"))):
        run = _torch_engine(shards, sample_tokenizer_dir, tmp_path / name, "--epochs", "1", *LINEAR, *extra)
        assert run.returncode == 0, run.stderr[-3000:]
        logs[name] = [(r["step"], r["loss"]) for r in map(json.loads, (tmp_path / name / "metrics.jsonl")
                                                          .read_text().splitlines())]
    assert logs["plain"] == logs["successors"] and logs["plain"]


def _held_then_annealed(out, stderr: str, anneal_steps: int, epochs: int, steps_per_epoch: int) -> None:
    """The plateau schedule's run: the rate held at lr until the anneal, then down to 0 in ``anneal_steps``, and
    training ends there."""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_early"] == f"anneal of {anneal_steps} steps done"
    lrs = [r["lr"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]
    held, anneal = lrs[2:-anneal_steps], lrs[-anneal_steps:]
    assert held and all(lr == pytest.approx(1e-3) for lr in held)  # no decay before the anneal
    assert all(a > b for a, b in zip(anneal, anneal[1:])) and anneal[-1] == 0.0
    if "validation has not improved" in stderr:  # a plateau came first: the anneal starts from the best epoch
        assert len(lrs) < epochs * steps_per_epoch
        assert f"annealing over {anneal_steps} steps from epoch {summary['best']['epoch']}'s weights" in stderr
    else:  # no plateau: the anneal takes the run's last steps
        assert len(lrs) == epochs * steps_per_epoch and f"annealing over the last {anneal_steps} steps" in stderr


PLATEAU = ("--warmup-steps", "2", "--warmup-ratio", "0", "--anneal-patience", "1", "--anneal-epochs", "0.5",
           "--anneal-from-best")


def test_plateau_schedule_anneals_once_validation_stalls_and_ends_with_the_anneal(shards, sample_tokenizer_dir,
                                                                               collide_catalog, word_ids, tmp_path):
    run = _torch_engine(shards, sample_tokenizer_dir, tmp_path, "--epochs", "6", *PLATEAU,
                        "--valid-catalog", str(collide_catalog), "--valid-ids", str(word_ids))  # 30 steps an epoch
    assert run.returncode == 0, run.stderr[-3000:]
    _held_then_annealed(tmp_path, run.stderr, 15, 6, 30)


@pytest.mark.slow
def test_plateau_schedule_under_deepspeed_with_two_ranks(shards, sample_tokenizer_dir, collide_catalog, word_ids,
                                                        tmp_path):
    run = _launch(shards, sample_tokenizer_dir, tmp_path, "--zero-stage", "2", "--epochs", "4", *PLATEAU,
                  "--valid-catalog", str(collide_catalog), "--valid-ids", str(word_ids))  # 8 steps an epoch
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    _held_then_annealed(tmp_path, run.stdout + run.stderr, 4, 4, 8)


def test_valid_from_skips_the_early_epochs_validation(shards, sample_tokenizer_dir, collide_catalog, word_ids,
                                                       tmp_path):
    run = _torch_engine(shards, sample_tokenizer_dir, tmp_path, "--epochs", "3", "--valid-from", "0.6",
                        "--valid-catalog", str(collide_catalog), "--valid-ids", str(word_ids))
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert ["valid" in h for h in summary["history"]] == [False, True, True]  # epoch 1 ends at 2/3 of the run
    assert summary["best"]["epoch"] in (1, 2) and (tmp_path / "epoch000" / "model.safetensors").exists()
    assert "epoch 0: not validated" in run.stderr


def test_length_grouping_keeps_every_sample_and_reduces_padding():
    rng = random.Random(0)
    samples = [{"key": str(i), "src": "x" * rng.randint(1, 200)} for i in range(103)]
    batches = [samples[i:i + 8] for i in range(0, len(samples), 8)]
    grouped = list(length_grouped(batches, 8, 4, seed=1))
    assert len(grouped) == len(batches)
    assert sorted(s["key"] for b in grouped for s in b) == sorted(s["key"] for s in samples)
    pad = lambda bs: sum(max(len(s["src"]) for s in b) * len(b) - sum(len(s["src"]) for s in b) for b in bs)
    assert pad(grouped) < pad(batches) / 2
    assert grouped == list(length_grouped(batches, 8, 4, seed=1))  # deterministic: resume skips the same batches


def test_prefetch_passes_items_in_order_and_raises_errors():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))

    def broken():
        yield 1
        raise ValueError("bad sample")

    it = prefetch(broken())
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad sample"):
        next(it)


def test_init_and_model_size_or_tokenizer_must_agree(tiny_generator, sample_tokenizer_dir, other_tokenizer_dir):
    """The README's foundation command once trained a mini model (its --init) under a config saying small."""
    from pretrain.train import TrainConfig, initial_model

    model, _ = initial_model(TrainConfig(init=tiny_generator, model_size="tiny", tokenizer=sample_tokenizer_dir))
    assert model.config.d_model == 32
    with pytest.raises(ValueError, match=r"another architecture than model_size 'small' \(d_model 32 vs 512"):
        initial_model(TrainConfig(init=tiny_generator, model_size="small"))
    with pytest.raises(ValueError, match="tokenizer mismatch: init .* but tokenizer .* uses tokenizer"):
        initial_model(TrainConfig(init=tiny_generator, tokenizer=other_tokenizer_dir))
    fresh, _ = initial_model(TrainConfig(tokenizer=sample_tokenizer_dir))  # no init: model_size, tiny by default
    assert fresh.config.d_model == 32 and fresh.config.vocab_size == 600


def test_validation_must_use_the_ids_the_shards_were_built_from(shards, collide_catalog, word_ids,
                                                                sample_tokenizer_dir, tmp_path):
    from catalog.id_table import ITEM_TABLE, read_id_table, write_id_table
    from catalog.tokenizer import load_tokenizer
    from pretrain.train import TrainConfig, check_lineage

    check_lineage(TrainConfig(shards=shards, valid_catalog=collide_catalog, valid_ids=word_ids))
    t = read_id_table(word_ids / ITEM_TABLE)
    write_id_table(tmp_path / "other" / ITEM_TABLE, {"item_id": t["item_id"]}, [f"x {i}" for i in t["id"]],
                   load_tokenizer(sample_tokenizer_dir))
    with pytest.raises(ValueError, match="are not the IDs the shards .* were built from"):
        check_lineage(TrainConfig(shards=shards, valid_catalog=collide_catalog, valid_ids=tmp_path / "other"))
