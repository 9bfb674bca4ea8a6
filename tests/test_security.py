"""Safe by default, measured from outside as an attacker on the network would see it: a Ray-backed job's endpoints
refuse the job API without Ray's token, the token file is its owner's alone, the training store of a local run
listens on loopback only, no project file switches Ray's authentication off, and outputs follow the umask."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from cluster.idjob import IDJobConfig, id_workers
from cluster.ray_session import ensure_token, stop_orphans
from infra.atomic import atomic_dir, write_json
from tests.crash import pids_named

REPO = Path(__file__).resolve().parents[1]
JOB_API = ("/api/job_agent/jobs/", "/api/jobs/")


def _host_addresses() -> list[str]:
    """Loopback and this machine's own addresses (where a stranger would knock)."""
    found = {"127.0.0.1"}
    for addrs in psutil.net_if_addrs().values():
        found |= {a.address for a in addrs if a.family == socket.AF_INET}
    return sorted(found)


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    return sorted({(c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="inet")
                   if c.status == psutil.CONN_LISTEN and c.pid in pids})


def _job_api_status(host: str, port: int, path: str) -> int:
    """The HTTP status of a credential-less GET (0: no HTTP answer at all; -1: a Prometheus metrics page, which
    such exporters serve at any path: read-only figures, not the job API)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=2) as r:
            return -1 if r.read(64).startswith(b"# HELP") else r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ValueError, http.client.HTTPException):  # not HTTP: a gRPC or raw port
        return 0


@pytest.mark.slow
def test_a_ray_job_refuses_its_job_api_without_the_token(tiny_generator, collide_catalog, tmp_path):
    """The ID job's Ray (started as every job of ours starts it): every listening port of its processes, on every
    address of this machine, either speaks no HTTP, knows no job API (404), serves metrics, or answers 401."""
    cfg = IDJobConfig(catalog=collide_catalog, out=tmp_path / "ids", model=tiny_generator, actors=2, groups=4)
    with id_workers(cfg):
        ray_pids = {p.pid for p in psutil.Process().children(recursive=True)}
        ports = _listening(ray_pids)
        answers = {(host, port, path): _job_api_status(host, port, path)
                   for _, port in ports for host in _host_addresses() for path in JOB_API}
    assert ports, "no Ray process was found listening"
    opened = {k: v for k, v in answers.items() if v not in (-1, 0, 401, 403, 404)}
    assert not opened, f"answered without the token: {opened}"
    assert 401 in answers.values(), "the job agent was not found (nothing refused the job API)"
    assert os.environ["RAY_AUTH_MODE"] == "token"
    assert stat.S_IMODE(ensure_token(create=False).stat().st_mode) == 0o600


def test_nothing_switches_ray_authentication_off():
    files = [REPO / "Makefile", REPO / ".ci" / "run", REPO / "README.md", *REPO.glob("docs/*.md"),
             *REPO.glob("tests/*.py"), *REPO.glob("bench/*.py"), *REPO.glob("cluster/*.py")]
    needle = "RAY_AUTH_MODE" + "=disabled"  # split, so that this file does not name it
    assert not [f.name for f in files if f.is_file() and needle in f.read_text()]
    assert [n for n in ('"disabled"', "'disabled'") if n in (REPO / "tests" / "conftest.py").read_text()] == []


LISTEN_PROBE = """
import json, psutil
from pretrain.distributed import init_processes
from pretrain.train import TrainConfig
init_processes(TrainConfig())  # a local run: one rank, the process group made as the trainer makes it
print(json.dumps(sorted({c.laddr.ip for c in psutil.Process().net_connections(kind='inet')
                         if c.status == psutil.CONN_LISTEN})))
"""


def test_the_training_store_of_a_local_run_listens_on_loopback_only():
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    done = subprocess.run([sys.executable, "-c", LISTEN_PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    addresses = json.loads(done.stdout.strip().splitlines()[-1])
    assert addresses and set(addresses) == {"127.0.0.1"}, addresses


def test_outputs_are_readable_under_the_usual_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "summary.json", {"a": 1})
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "weights").write_bytes(b"x")
        assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == 0o644
        assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
        os.umask(0o077)  # a private umask is honoured too
        write_json(tmp_path / "private.json", {"a": 1})
        assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600
    finally:
        os.umask(old)


@pytest.mark.slow
def test_a_job_run_without_ray_auth_mode_set_uses_token_mode(tiny_generator, collide_catalog, tmp_path):
    """As a user runs it: no RAY_AUTH_MODE in the environment (Ray is imported before the job sets it)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    done = subprocess.run([sys.executable, "-m", "cluster.cli", "ids", "--catalog", str(collide_catalog), "--model",
                           str(tiny_generator), "--out", str(tmp_path / "ids"), "--actors", "2", "--groups", "4"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "ids" / "item_ids.parquet").is_file()


@pytest.mark.slow
def test_processes_left_by_a_killed_job_are_stopped_by_the_next(tiny_generator, collide_catalog, tmp_path):
    """kill -9 of the driver alone (not its group): its Ray processes outlive it; the next job stops them."""
    cmd = [sys.executable, "-m", "cluster.cli", "ids", "--catalog", collide_catalog, "--model", tiny_generator,
           "--out", tmp_path / "ids", "--actors", "2", "--shard-size", "8", "--batch-size", "8", "--groups", "4"]
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = Path.home() / ".cache" / "idgenrec" / "ray" / f"{proc.pid}.json"
    deadline = time.time() + 300
    while not (records.exists() and pids_named("ray::GeneratorActor")) and time.time() < deadline:
        assert proc.poll() is None, "the job ended before it could be killed"
        time.sleep(0.05)
    left = [p["pid"] for p in json.loads(records.read_text())["processes"]]
    proc.kill()
    proc.wait()
    assert any(psutil.pid_exists(p) for p in left), "nothing outlived the driver: nothing to test"
    assert stop_orphans() > 0
    assert not [p for p in left if _running(p)]
    assert not records.exists()


@pytest.mark.slow
def test_ctrl_c_ends_a_job_with_one_line_and_no_orphans(tiny_generator, collide_catalog, tmp_path):
    """SIGINT to the job's process group, as Ctrl-C in a terminal sends it."""
    cmd = [sys.executable, "-m", "cluster.cli", "ids", "--catalog", collide_catalog, "--model", tiny_generator,
           "--out", tmp_path / "ids", "--actors", "2", "--shard-size", "8", "--batch-size", "8", "--groups", "4"]
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 300
    while not pids_named("ray::GeneratorActor") and time.time() < deadline:
        time.sleep(0.05)
    started = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "interrupted; finished steps are kept" in err.strip().splitlines()[-1]
    deadline = time.time() + 60
    while [p for p in started if _running(p)] and time.time() < deadline:
        time.sleep(0.5)
    assert not [p for p in started if _running(p)]


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
