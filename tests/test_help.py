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


def test_demo_size_and_lr_reach_the_generator_and_the_recommender():
    from cluster.demo import demo_configs
    from seq2seq.model import model_config

    args = build_parser().parse_args(["demo", "--size", str(REPO / "configs" / "size_d64.yaml"), "--lr", "5e-3"])
    standard, recommender = demo_configs(args)
    assert (standard.warmstart.model_size, standard.warmstart.lr, recommender.lr) == (args.size, 5e-3, 5e-3)
    assert standard.init_from_generator  # the recommender has the generator's size
    sizes = [model_config(s).d_model for s in ("tiny", standard.warmstart.model_size, "mini")]
    assert sizes == [32, 64, 128]
    default, _ = demo_configs(build_parser().parse_args(["demo"]))
    assert default.warmstart.model_size == "tiny"


def test_every_flag_says_what_it_does():
    """No flag shows only a default; a flag without a default shows none; descriptions are plain text."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bare = []
    for name, p in sub.choices.items():
        assert p.description and "``" not in p.description, name
        for action in p._actions:
            text = (action.help or "").strip()
            if action.option_strings and action.dest != "help" and (not text or text.startswith("(default")):
                bare.append(f"{name} {action.option_strings[-1]}")
            assert "(default: None)" not in text and text.count("default") <= 1, (name, text)
    assert not bare


def test_a_mistyped_flag_prints_the_subcommands_usage():
    done = subprocess.run([sys.executable, "-m", "cluster.cli", "ids", "--catalgo", "x"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "usage: idgenrec ids" in done.stderr and "unrecognized arguments: --catalgo" in done.stderr
