"""The Ray ID job, for real: local Ray, 1 and 2 actors, a killed actor, a crashed driver, and `ray job submit`."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from catalog.id_table import read_id_table
from cluster.idjob import IDJobConfig, run_ids
from cluster.ray_session import ensure_token
from tests.crash import kill_when, pids_named

pytestmark = pytest.mark.slow  # local Ray clusters, killed actors and drivers

REPO = Path(__file__).resolve().parents[1]


def _cfg(catalog, model, out, actors, **kw):
    return IDJobConfig(catalog=catalog, out=out, model=model, actors=actors, shard_size=8, batch_size=8, groups=4,
                       **kw)


@pytest.fixture(scope="module")
def reference_table(tiny_generator, collide_catalog, tmp_path_factory):
    out = tmp_path_factory.mktemp("ids") / "one_actor"
    summary = run_ids(_cfg(collide_catalog, tiny_generator, out, actors=1, user_ids=True))
    return read_id_table(out / "item_ids.parquet"), read_id_table(out / "user_ids.parquet"), summary


def test_unique_complete_and_escalated(reference_table):
    items, users, summary = reference_table
    assert len(items["id"]) == 48 and len(set(items["id"])) == 48 and all(items["id"])
    assert items["item_id"][0] == "i00a" and all(len(t) >= 1 for t in items["token_ids"])
    assert max(items["attempts"]) > 1  # identical texts forced lambda up or the window wider
    assert summary["items"]["needed_higher_lambda"] > 0
    # summary.json keeps real types, not their strings
    config = json.loads((summary_path := Path(summary["config"]["out"]) / "summary.json").read_text())["config"]
    assert config["groups"] == 4 and config["address"] is None and config["user_ids"] is True, summary_path
    assert len(set(users["id"])) == len(users["id"]) == 30 * 4  # 5 items each: positions 1..4


def test_two_actors_give_the_same_table(reference_table, tiny_generator, collide_catalog, tmp_path):
    run_ids(_cfg(collide_catalog, tiny_generator, tmp_path / "two", actors=2, user_ids=True))
    assert read_id_table(tmp_path / "two" / "item_ids.parquet") == reference_table[0]
    assert read_id_table(tmp_path / "two" / "user_ids.parquet") == reference_table[1]


def _saved_shards(out) -> int:
    return len(list((out / "work").glob("*/proposals_r*/shard_*.json")))


def test_killed_actor_is_restarted_and_the_table_is_the_same(reference_table, tiny_generator, collide_catalog,
                                                             tmp_path):
    """kill -9 of a generator actor's process while the job runs: Ray restarts it, the shard is retried."""
    out = tmp_path / "actor_killed"
    done: dict = {}
    job = threading.Thread(target=lambda: done.update(summary=run_ids(
        _cfg(collide_catalog, tiny_generator, out, actors=2, user_ids=True))))
    job.start()
    deadline = time.time() + 300
    while not (_saved_shards(out) and pids_named("ray::GeneratorActor")) and time.time() < deadline:
        time.sleep(0.01)
    victims = pids_named("ray::GeneratorActor")
    assert victims and job.is_alive(), "the job ended before an actor could be killed"
    os.kill(victims[0], signal.SIGKILL)
    job.join(600)
    assert "summary" in done
    assert read_id_table(out / "item_ids.parquet") == reference_table[0]
    assert read_id_table(out / "user_ids.parquet") == reference_table[1]


def test_crashed_driver_resumes_to_the_same_table(reference_table, tiny_generator, collide_catalog, tmp_path):
    """The job's whole process group (driver, its local Ray, the actors) is SIGKILLed after 7 shards are saved; the
    same job run again continues from the saved shards and rounds and ends with the same table."""
    out = tmp_path / "driver_killed"
    cmd = [sys.executable, "-m", "cluster.cli", "ids", "--catalog", collide_catalog, "--model", tiny_generator,
           "--out", out, "--actors", "2", "--shard-size", "8", "--batch-size", "8", "--groups", "4", "--user-ids",
           "--device", "cpu"]
    assert kill_when(cmd, lambda: _saved_shards(out) >= 7, env=dict(os.environ)) == -9
    assert not (out / "user_ids.parquet").exists()
    run_ids(_cfg(collide_catalog, tiny_generator, out, actors=2, user_ids=True))  # resubmit
    assert read_id_table(out / "item_ids.parquet") == reference_table[0]
    assert read_id_table(out / "user_ids.parquet") == reference_table[1]


def test_bad_input_is_named(tiny_generator, tmp_path):
    from catalog.prepare import PrepareConfig, prepare
    from tests.conftest import write_shared

    write_shared(tmp_path / "d", {"u": ["a", "b", "c"]}, [{"item_id": "a", "title": "x"}, {"item_id": "b"},
                                                           {"item_id": "c", "title": "y"}])
    prepare(PrepareConfig(data=tmp_path / "d", out=tmp_path / "cat"))
    with pytest.raises(Exception, match=r"empty text, e.g. \['b'\]"):
        run_ids(_cfg(tmp_path / "cat", tiny_generator, tmp_path / "o", actors=1))


def test_id_space_too_small():
    from cluster.idjob import check_id_space
    from idgen.algorithm1 import Algorithm1Config

    cfg = Algorithm1Config(window_width=2, max_windows=1)  # IDs of 1 or 2 tokens
    check_id_space(6, 5, 3, cfg)  # 2 usable tokens: 2 + 4 = 6 IDs
    with pytest.raises(ValueError, match="7 items but only 6 distinct IDs"):
        check_id_space(7, 5, 3, cfg)


def _ray(*args, **kw):
    ray_bin = str(Path(sys.executable).parent / "ray")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([ray_bin, *args], env=env, capture_output=True, text=True, **kw)


def _status(url: str) -> int:
    """The HTTP status of a GET without credentials (0: nothing answered)."""
    try:
        return urllib.request.urlopen(url, timeout=2).status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def test_ray_job_submit_round_trip(reference_table, tiny_generator, collide_catalog, tmp_path):
    """As the README says: a token (`ray get-auth-token --generate`), `ray start`, `ray job submit`, all in token
    mode; the job API refuses a request without the token."""
    assert _ray("get-auth-token", "--generate", timeout=60).returncode == 0
    ensure_token()  # owner-only, as every job of ours leaves it
    started = _ray("start", "--head", "--num-cpus=2", "--dashboard-host=127.0.0.1", "--disable-usage-stats",
                   timeout=120)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        for _ in range(60):  # the dashboard answers a moment after `ray start` returns
            if _status("http://127.0.0.1:8265/api/version"):
                break
            time.sleep(1)
        assert _status("http://127.0.0.1:8265/api/jobs/") == 401
        out = tmp_path / "submitted"
        job = _ray("job", "submit", "--address", "http://127.0.0.1:8265", "--working-dir", str(REPO), "--",
                   sys.executable, "-m", "cluster.cli", "ids", "--catalog", str(collide_catalog), "--model",
                   str(tiny_generator), "--out", str(out), "--actors", "2", "--shard-size", "8", "--batch-size", "8",
                   "--groups", "4", timeout=600)
        assert job.returncode == 0, (job.stdout + job.stderr)[-3000:]
        assert "ids: 48 items" in job.stdout
        assert read_id_table(out / "item_ids.parquet") == reference_table[0]
    finally:
        _ray("stop", "--force", timeout=120)


def test_in_process_without_ray(reference_table, tiny_generator, collide_catalog, tmp_path):
    """actors 0: the same rounds in this process, no Ray; the table is complete, unique, and the same as the
    actors' (one thread each, like an actor, so that float sums agree)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = run_ids(_cfg(collide_catalog, tiny_generator, tmp_path / "local", actors=0, user_ids=True))
    finally:
        torch.set_num_threads(threads)
    assert "process" in summary["peak_memory_mb"]
    assert read_id_table(tmp_path / "local" / "item_ids.parquet") == reference_table[0]
    assert read_id_table(tmp_path / "local" / "user_ids.parquet") == reference_table[1]
