"""Ray for our jobs: token authentication on, a private token file, and no processes left behind.

Ray's GCS server, raylet, workers and dashboard agent listen on every interface, whatever node address is asked for,
so the control that keeps strangers out is Ray's token authentication (``RAY_AUTH_MODE=token``): without the token,
the job API answers 401. Every job that starts or joins Ray goes through :func:`start_ray`, which turns token mode on
(refusing the mode ``disabled`` for a local instance), keeps the token file readable by its owner only, and
records the local instance's processes, so that a job killed with ``kill -9`` leaves nothing that the next job does
not stop. Joining a cluster: ``ray get-auth-token --generate`` once on the head (see docs), copy the token file to
``~/.ray/auth_token`` (mode 0600) on each machine or set ``RAY_AUTH_TOKEN_PATH``, and run every ``ray`` command with
``RAY_AUTH_MODE=token``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from pathlib import Path

from infra.atomic import write_json

log = logging.getLogger("idgenrec.ray")
AUTH_MODE = "RAY_AUTH_MODE"


def token_path() -> Path:
    """Where Ray reads its token: ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def ensure_token(create: bool = True) -> Path | None:
    """Token mode for this process and its children, and a token file readable by its owner only (created with
    256 random bits when missing and ``create``). Returns the file, or None when the token comes from
    ``RAY_AUTH_TOKEN``."""
    os.environ[AUTH_MODE] = "token"
    _refresh_ray_config()
    if os.environ.get("RAY_AUTH_TOKEN"):
        return None
    path = token_path()
    if not path.is_file() and create:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        log.info("generated a Ray authentication token in %s (mode 0600)", path)
    if path.is_file() and path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # Ray writes its own token files 0644: other accounts could join the cluster
    return path


def _refresh_ray_config() -> None:
    """Ray reads its settings once, when it is imported: a process that imported Ray before the mode was set would
    start a cluster that wants the token while its own client sends none (as Ray itself does, re-read them)."""
    try:
        from ray._raylet import Config
    except ImportError:  # no Ray here: nothing to refresh
        return
    Config.initialize("")


def _auth_for(address: str | None) -> None:
    mode = os.environ.get(AUTH_MODE, "").lower()
    if mode == "disabled":
        if not address:
            raise ValueError("RAY_AUTH_MODE is disabled: refusing to start a local Ray instance without token "
                             "authentication (its job API would run code for anyone who can reach this machine); "
                             "unset it")
        log.warning("RAY_AUTH_MODE is disabled: joining %s without a token (its job API is open to its network)",
                    address)
        return
    ensure_token(create=not address)


def start_ray(address: str | None, actors: int) -> bool:
    """Connect to a cluster (``address``, or RAY_ADDRESS under ``ray job submit``) or start a local instance, with
    token authentication. Returns whether this call started Ray (then the caller shuts it down at the end)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    _auth_for(address)
    if address:
        ray.init(address=address, log_to_driver=False)
        return True
    stop_orphans()
    ray.init(num_cpus=max(actors, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    _record_processes()
    return True


def stop_ray() -> None:
    """Shut down the local instance this process started, and forget its process record."""
    import ray

    ray.shutdown()
    _record_file(os.getpid()).unlink(missing_ok=True)


def gpu_share(device: str, cluster_gpus: float, workers: int, per_worker: float | None = None) -> tuple[float, str]:
    """(GPUs each of ``workers`` requests, the device they run on): with ``auto``, a share of the cluster's GPUs
    when it has any (at most one each, so that all workers fit at once), else the CPU."""
    if device == "cpu" or (device == "auto" and cluster_gpus <= 0):
        return 0.0, "cpu"
    if cluster_gpus <= 0:
        raise ValueError(f"device {device!r} asked for, but the Ray cluster has no GPU")
    share = per_worker if per_worker is not None else min(1.0, cluster_gpus / max(workers, 1))
    return share, "cuda"


def _records() -> Path:
    return Path(os.environ.get("IDGENREC_STATE", Path.home() / ".cache" / "idgenrec")) / "ray"


def _record_file(pid: int) -> Path:
    return _records() / f"{pid}.json"


def _record_processes() -> None:
    """Write the pids (and start times, against pid reuse) of the Ray processes this job started."""
    import psutil

    me = psutil.Process()
    procs = [{"pid": p.pid, "started": p.create_time()} for p in me.children(recursive=True)]
    write_json(_record_file(me.pid), {"driver": me.pid, "driver_started": me.create_time(), "processes": procs})


def stop_orphans() -> int:
    """Stop the Ray processes of earlier jobs of ours whose driver is gone (killed with -9, say); returns how many
    were stopped. Processes of a live job, and pids reused by other programs, are left alone."""
    import psutil

    stopped = 0
    for path in sorted(_records().glob("*.json")) if _records().is_dir() else []:
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _alive(rec["driver"], rec["driver_started"]):
            continue
        victims = [psutil.Process(p["pid"]) for p in rec["processes"] if _alive(p["pid"], p["started"])]
        for proc in victims:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(victims, timeout=10)
        stopped += len(victims)
        path.unlink(missing_ok=True)
    if stopped:
        log.warning("stopped %d Ray process(es) left by an earlier job that did not end cleanly", stopped)
    return stopped


def _alive(pid: int, started: float) -> bool:
    import psutil

    try:
        return abs(psutil.Process(pid).create_time() - started) < 1e-3
    except psutil.Error:
        return False
