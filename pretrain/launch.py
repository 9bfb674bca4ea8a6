"""Starting the trainer under the ``deepspeed`` launcher of this Python environment (one process per accelerator;
on CPU, per process)."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("idgenrec.launch")


def launch_train(procs: int, args: list[str], launcher_args: list[str] | None = None,
                 **run_kw) -> subprocess.CompletedProcess:
    """``deepspeed --num_accelerators procs [launcher_args] --module pretrain.train args``; ``run_kw`` go to
    ``subprocess.run`` (check, capture_output, env, timeout, ...)."""
    cmd = [str(Path(sys.executable).parent / "deepspeed"), "--num_accelerators", str(procs), *map(str, launcher_args or []),
           "--module", "pretrain.train", *map(str, args)]
    log.info("launching: %s", " ".join(cmd))
    return subprocess.run(cmd, **run_kw)
