"""`pip install .` (a wheel, not editable) works: everything a job reads ships inside the packages.

The wheel goes into a fresh venv; the dependencies come from this environment's site-packages through a ``.pth``
line (so nothing is downloaded), whose own ``.pth`` files (the editable install) are not run. Jobs run from an
empty folder, so the source tree is not on the path.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds and installs a wheel

REPO = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, env):
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return out.stdout


def test_wheel_installs_and_runs_outside_the_source_tree(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"HF_HUB_OFFLINE": "1"}
    src = tmp_path / "src"  # setuptools builds in the source folder: build a copy, leave the checkout clean
    tracked = _run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO, env).split()
    for name in tracked:
        if not name.startswith(("tests/", "bench/", ".ci/")):
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
          src], tmp_path, env)
    wheel = next((tmp_path / "dist").glob("idgenrec-*.whl"))
    _run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv"], tmp_path, env)
    python = tmp_path / "venv" / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path, env)
                .strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", site, wheel],
         tmp_path, env)
    work = tmp_path / "work"
    work.mkdir()
    where = _run([python, "-c", "import catalog, idgen; print(catalog.__file__); print(idgen.__file__)"], work, env)
    assert str(REPO) not in where and str(site) in where  # the installed copy, not the source tree
    cli = [python, "-m", "cluster.cli"]
    sample = site / "catalog" / "sample" / "Toys"
    _run([*cli, "prepare", "--data", sample, "--out", "cat"], work, env)
    _run([*cli, "tokenizer", "--catalog", "cat", "--out", "tok", "--vocab-size", "300"], work, env)
    out = _run([*cli, "idgen-warmstart", "--catalog", "cat", "--tokenizer", "tok", "--out", "gen", "--model-size",
                "tiny", "--steps", "3", "--min-epochs", "0", "--batch-size", "4", "--device", "cpu"], work, env)
    assert "warm start:" in out and (work / "gen" / "model.safetensors").is_file()
    _run([*cli, "report", work, "--out", "rep"], work, env)  # reads eval/paper_results.json from the package
