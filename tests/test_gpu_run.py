"""bench/gpu_run.py end to end at smoke sizes on CPU, in a Python where Ray and DeepSpeed cannot be imported (as on
the GPU machine): every phase runs, results and table come out, our decoder equals transformers' on the same users."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, shared_dataset

pytestmark = pytest.mark.slow  # the whole GPU run at smoke sizes

BLOCKED = ("import runpy, sys; sys.modules['deepspeed'] = sys.modules['ray'] = None; "
           "sys.argv = ['gpu_run.py'] + sys.argv[1:]; runpy.run_path('bench/gpu_run.py', run_name='__main__')")


def test_smoke_run_without_ray_or_deepspeed(tmp_path):
    data = shared_dataset("Beauty")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-c", BLOCKED, "--smoke", "--data", str(data), "--out", str(out),
                          "--work", str(tmp_path / "work")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    r = json.loads((out / "gpu_run.json").read_text())
    assert r["errors"] == {} and r["env"]["smoke"]
    assert set(r["phases"]) == {"quality", "decoding", "ID generation", "training"}
    q = r["quality"]  # the standard recipe's result, the same code as `idgenrec standard`
    for method in ("ours", "sasrec", "popularity"):
        for key in ("HR@5", "HR@10", "NDCG@5", "NDCG@10"):
            assert 0 <= q[method]["test"][key] <= 1
        assert q[method]["test"]["users"] == q["ours"]["test"]["users"]  # the same users for every method
    # fair comparisons: the same users and batch for decoding, the same items and attempt for IDs, the same steps,
    # micro-batch and precision for training; each names its baseline
    d, i, t = r["decoding"], r["ID generation"], r["training"]
    assert d["same_top20_fraction"] == 1.0  # float32 on CPU: the same ranked items as transformers
    assert d["compared_users"] == r["sizes"]["stock_users"] and d["batch"] == r["sizes"]["decode_batch"]
    assert d["ratio_vs_python_trie"] == d["ours_users_per_s"] / d["transformers_python_trie_users_per_s"]
    assert i["compared_items"] == r["sizes"]["serial_items"] and i["ratio"] > 0
    assert t["ratio"] > 0 and t["steps"] == r["sizes"]["train_bench_steps"] and t["precision"] == "fp32, AdamW (CPU)"
    assert all("baseline_setup" in x for x in (d, i, t))
    table = (out / "table.txt").read_text()
    assert run.stdout.rstrip().endswith(table.rstrip())  # the table is printed last
    assert "decoding users/s" in table and "IDGenRec (ours)" in table and "baselines:" in table
