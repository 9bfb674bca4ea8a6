"""One config dataclass per job: defaults < YAML file < command-line flags.

Every field of a job's dataclass becomes a flag with the same name (``max_history`` -> ``--max-history``),
so the names in code, YAML and docs are the same. Lists take several values (``--field-order title brand``).
"""
from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or flag that does not fit the job's dataclass."""


def _base_type(tp: Any) -> Any:
    """Unwrap ``Optional[X]`` / ``X | None`` to ``X``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


# What a field of a common name does, wherever a job's own help texts do not say more.
COMMON_HELP = {
    "seed": "random seed: the same seed on the same data gives the same result",
    "batch_size": "examples processed together (larger: faster, more memory)",
    "eval_batch_size": "users scored together in evaluation",
    "lr": "peak learning rate (AdamW)",
    "weight_decay": "AdamW weight decay",
    "steps": "optimizer steps",
    "max_source_tokens": "input tokens kept (longer inputs are cut)",
    "max_history": "the most recent history items a prompt or user ID is made from",
    "samples_per_shard": "training samples per WebDataset tar shard",
    "bf16": "bfloat16 autocast (fast on GPUs that have it)",
    "groups": "k: diverse beam groups (= ID candidates per attempt)",
    "beams": "beam width of the trie-constrained search (>= 10: HR@10 needs 10 items)",
    "length_penalty": "beam score = sum of token log-probabilities / length ** this",
    "address": "Ray cluster address (default: RAY_ADDRESS if set, else a local Ray instance with token "
               "authentication)",
    "actors": "Ray actors (0: in this process, without Ray)",
    "device": "auto (a GPU when present), cpu or cuda",
    "out": "output folder",
}


def _help(name: str, default: Any, help_texts: dict[str, str]) -> str:
    """A flag's help: what the field does, then its default unless that is None (nothing given) or already said."""
    text = help_texts.get(name) or COMMON_HELP.get(name, "")
    if default is not None and default != [] and "default" not in text.lower():
        text = f"{text} (default: {default!r})".strip()
    return text.replace("%", "%%")  # argparse %-formats help texts


def add_config_args(parser: argparse.ArgumentParser, cls: type, help_texts: dict[str, str] | None = None) -> None:
    """Add ``--config`` and one flag per dataclass field; flags default to None (= not given)."""
    help_texts = help_texts or {}
    parser.add_argument("--config", type=Path, help="YAML file with any of the fields below (flags override it)")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = _base_type(hints[f.name])
        flags = (["-" + f.name] if len(f.name) == 1 else []) + ["--" + f.name.replace("_", "-")]  # -k and --k
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)  # type: ignore[misc]
        text = _help(f.name, default, help_texts)
        if tp is bool:
            parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif typing.get_origin(tp) in (list, tuple):
            (item_tp, *_) = typing.get_args(tp) or (str,)
            parser.add_argument(*flags, dest=f.name, nargs="*", type=_base_type(item_tp), default=None, help=text)
        else:
            parser.add_argument(*flags, dest=f.name, type=tp if tp in (int, float, str, Path) else str,
                                default=None, help=text)


def load_config(cls: type[T], path: Path | str | None = None, **overrides: Any) -> T:
    """Build ``cls`` from defaults, then the YAML file at ``path``, then ``overrides`` that are not None."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of field: value, got {type(loaded).__name__}")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}unknown config field(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    for name, value in list(values.items()):
        tp = _base_type(hints[name])
        if tp is Path and value is not None:
            values[name] = Path(value)
        elif typing.get_origin(tp) is tuple and value is not None:
            values[name] = tuple(value)
    try:
        cfg = cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{cls.__name__}: {e}") from e
    check = getattr(cfg, "check", None)
    if callable(check):
        check()
    return cfg


def config_from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The job's config from parsed arguments made by :func:`add_config_args`."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return load_config(cls, getattr(args, "config", None), **{n: getattr(args, n, None) for n in names})


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain YAML/JSON-safe dict of a config (Paths as strings, also inside lists; tuples as lists)."""
    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


def config_to_args(cfg: Any) -> list[str]:
    """The command-line flags that rebuild ``cfg`` through :func:`add_config_args` (fields left None are left out):
    how a recipe hands a config to a job it starts as another process (e.g. under the deepspeed launcher)."""
    args: list[str] = []
    for name, value in config_to_dict(cfg).items():
        flag = "--" + name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return args


def add_job(sub: argparse._SubParsersAction, name: str, cls: type[T], run: Callable[[T], None], summary: str,
            description: str = "", help_texts: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """A subcommand whose flags are the fields of the job's config dataclass ``cls`` (plus ``--config``); it calls
    ``run(config)``."""
    p = sub.add_parser(name, help=summary, description=description or summary)
    add_config_args(p, cls, help_texts)
    p.set_defaults(func=lambda args: run(config_from_args(cls, args)))
    return p
