"""Fault injection from the outside, as a crash really happens: run a real command in its own process group and
``kill -9`` the whole group once a condition on its files holds. Production code takes no test hooks."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Callable


def kill_when(cmd: list, ready: Callable[[], bool], env: dict | None = None, timeout: float = 600) -> int:
    """Start ``cmd``; SIGKILL its process group (children too: launcher ranks, a local Ray) as soon as ``ready()``;
    return its exit status. Fails when the command ends by itself first: then nothing was tested."""
    proc = subprocess.Popen([str(c) for c in cmd], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"{cmd[:4]} ended (status {proc.returncode}) before the kill: "
                                 f"{proc.stderr.read()[-2000:]}")
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{cmd[:4]}: condition not reached in {timeout} s")
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    return proc.returncode


def pids_named(fragment: str) -> list[int]:
    """Processes whose command line contains ``fragment`` (e.g. Ray's ``ray::GeneratorActor`` process title)."""
    out = subprocess.run(["pgrep", "-f", fragment], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]
