"""Configs compose: a composite job nests its components' configs (YAML sections, dotted flags), each default lives
in one place, and a recipe file holds only what differs from the trainer's defaults."""
from __future__ import annotations

import argparse

import pytest
import yaml

from cluster.cli import build_parser
from cluster.standard import StandardConfig
from idgen.warmstart import WarmStartConfig
from infra.config import ConfigError, config_from_args, config_to_args, load_config
from pretrain.config import CPU_RECIPE, TrainConfig
from tests.conftest import REPO


def _standard_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["standard"]


def test_a_dotted_flag_reaches_the_component_and_the_rest_keep_its_defaults(tmp_path):
    args = _standard_parser().parse_args(["--data", "d", "--out", "o", "--warmstart.steps", "7",
                                          "--ids.groups", "4", "--shards.grounding", "text_to_id"])
    cfg = config_from_args(StandardConfig, args)
    assert cfg.warmstart.steps == 7 and cfg.ids.groups == 4 and cfg.shards.grounding == ["text_to_id"]
    assert cfg.warmstart.min_epochs == WarmStartConfig().min_epochs  # one home for each default
    again = config_from_args(StandardConfig, _standard_parser().parse_args(config_to_args(cfg)))
    assert again == cfg  # the round trip to flags (how a recipe hands a config to another process)


def test_yaml_sections_and_refusals(tmp_path):
    path = tmp_path / "std.yaml"
    path.write_text(yaml.safe_dump({"data": "d", "warmstart": {"lr": 0.01}, "sasrec": {"epochs": 3}}))
    cfg = load_config(StandardConfig, path, **{"warmstart.lr": 0.02})
    assert cfg.warmstart.lr == 0.02 and cfg.sasrec.epochs == 3  # flags over the file
    path.write_text(yaml.safe_dump({"warmstart": {"stepz": 1}}))
    with pytest.raises(ConfigError, match=r"warmstart: unknown config field\(s\) \['stepz'\] for WarmStartConfig"):
        load_config(StandardConfig, path)
    path.write_text(yaml.safe_dump({"warmstart": {"out": "elsewhere"}}))
    with pytest.raises(ConfigError, match=r"warmstart: \['out'\] are set by StandardConfig itself"):
        load_config(StandardConfig, path)
    assert "--warmstart.out" not in _standard_parser().format_help()  # the recipe's own fields: no flag


@pytest.mark.parametrize("recipe", [CPU_RECIPE, REPO / "configs" / "beauty.yaml", REPO / "configs" / "foundation.yaml"])
def test_recipe_files_hold_only_what_differs(recipe):
    """The measured recipe is TrainConfig's defaults; a recipe file that restated a measured lever would be a second
    home for it. One exception: ``warmup_ratio: 0`` with ``warmup_steps`` switches to a warmup in steps, for a recipe
    whose epochs are only a cap (a plateau ends the run, so a fraction of the cap is not a fraction of the run)."""
    levers = {"label_smoothing", "dropout", "warmup_ratio", "anneal_patience", "anneal_epochs",
              "eval_repeat_bias_grid"}
    fields = yaml.safe_load(recipe.read_text())
    if fields.get("warmup_ratio") == 0 and "warmup_steps" in fields:
        levers.discard("warmup_ratio")
    assert not levers & set(fields)
    defaults = TrainConfig()
    assert all(getattr(load_config(TrainConfig, recipe), k) == getattr(defaults, k) for k in levers)
