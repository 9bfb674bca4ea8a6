"""Every entry point explains itself: ``idgenrec SUBCOMMAND --help`` and ``python bench/X.py --help`` print usage.

argparse %-formats help texts, so a field's help or default with a bare ``%`` ("17% on Scientific") once crashed
``bench/quality.py --help`` with a TypeError instead of printing it.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from cluster.cli import build_parser
from infra.config import add_config_args

REPO = Path(__file__).resolve().parents[1]


def test_every_subcommand_formats_its_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 10
    for name, p in sub.choices.items():
        assert f"idgenrec {name}" in p.format_help(), name


def test_percent_in_a_help_text_is_printed_not_formatted():
    from dataclasses import dataclass

    @dataclass
    class Job:
        share: float = 0.5

    p = argparse.ArgumentParser()
    add_config_args(p, Job, {"share": "left 35% of IDs with a repeated word"})
    assert "left 35% of IDs" in p.format_help()


SCRIPTS = sorted(s.name for s in (REPO / "bench").glob("*.py") if "__main__" in s.read_text())  # not the helpers


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_help(script):
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
