"""Starting the trainer under the ``deepspeed`` launcher of this Python environment (one process per accelerator;
on CPU, per process)."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("idgenrec.launch")


def train_command(procs: int, args: list, launcher_args: list | None = None) -> list[str]:
    """``deepspeed --num_accelerators procs [launcher_args] --module pretrain.train args``."""
    return [str(Path(sys.executable).parent / "deepspeed"), "--num_accelerators", str(procs),
            *map(str, launcher_args or []), "--module", "pretrain.train", *map(str, args)]


def launch_train(procs: int, args: list, launcher_args: list | None = None, **run_kw) -> subprocess.CompletedProcess:
    """Run :func:`train_command`; ``run_kw`` go to ``subprocess.run`` (check, capture_output, env, timeout, ...)."""
    cmd = train_command(procs, args, launcher_args)
    log.info("launching: %s", " ".join(cmd))
    return subprocess.run(cmd, **run_kw)
