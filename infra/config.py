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
from typing import Any, Callable, Collection, TypeVar

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


def _nested(tp: Any) -> bool:
    """A field holding a component's config (a dataclass) rather than a value."""
    return dataclasses.is_dataclass(tp) and isinstance(tp, type)


def _filled(cls: type, component: str) -> tuple[str, ...]:
    """Fields of a component that the composite job sets itself (its ``FILLED`` map): no flags, refused in YAML."""
    return tuple(getattr(cls, "FILLED", {}).get(component, ()))


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]


def add_config_args(parser: argparse.ArgumentParser, cls: type, help_texts: dict[str, str] | None = None,
                    prefix: str = "", defaults: Any = None, hidden: Collection[str] = ()) -> None:
    """Add ``--config`` and one flag per dataclass field; flags default to None (= not given). A field that holds a
    component's config gets one flag per component field, dotted (``--warmstart.steps``; help texts under the dotted
    name)."""
    help_texts = help_texts or {}
    if not prefix:
        parser.add_argument("--config", type=Path, help="YAML file with any of the fields below, components' in "
                            "sections of their own (flags override it)")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, name = _base_type(hints[f.name]), prefix + f.name
        default = getattr(defaults, f.name) if defaults is not None else _field_default(f)
        if _nested(tp):
            add_config_args(parser, tp, help_texts, name + ".", default, _filled(cls, f.name))
            continue
        if f.name in hidden:
            continue
        flags = (["-" + f.name] if len(name) == 1 else []) + ["--" + name.replace("_", "-")]  # -k and --k
        text = _help(name, default, help_texts) if name in help_texts else _help(f.name, default, help_texts)
        if tp is bool:
            parser.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif typing.get_origin(tp) in (list, tuple):
            (item_tp, *_) = typing.get_args(tp) or (str,)
            parser.add_argument(*flags, dest=name, nargs="*", type=_base_type(item_tp), default=None, help=text)
        else:
            parser.add_argument(*flags, dest=name, type=tp if tp in (int, float, str, Path) else str,
                                default=None, help=text)


def _read_yaml(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of field: value, got {type(loaded).__name__}")
    return loaded


def load_config(cls: type[T], path: Path | str | None = None, **overrides: Any) -> T:
    """Build ``cls`` from defaults, then the YAML file at ``path``, then ``overrides`` that are not None. A component
    config is a section in the YAML file (``warmstart: {steps: 3000}``) or dotted in overrides (``warmstart.steps``),
    applied over the default the composite job gives it."""
    values = _read_yaml(path) if path is not None else {}
    for key, value in overrides.items():
        if value is not None:
            _set_dotted(values, key, value)
    return build_config(cls, values, f"{path}: " if path else "")


def _set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    head, _, rest = key.partition(".")
    if not rest:
        values[key] = value
        return
    section = values.setdefault(head, {})
    if not isinstance(section, dict):
        raise ConfigError(f"{head} is a value, not a component: {key} cannot be set")
    _set_dotted(section, rest, value)


def build_config(cls: type[T], values: dict[str, Any], where: str = "", base: Any = None) -> T:
    """``cls`` from ``values`` (plain fields, and dicts for component fields) over ``base`` (else the defaults);
    unknown fields are refused, naming the known ones."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}unknown config field(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    values = dict(values)
    for name, value in list(values.items()):
        tp = _base_type(hints[name])
        if _nested(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}{name} is a component of {cls.__name__}: give it a section of fields")
            filled = sorted(set(value) & set(_filled(cls, name)))
            if filled:
                raise ConfigError(f"{where}{name}: {filled} are set by {cls.__name__} itself, not in its section")
            start = getattr(base, name) if base is not None else _field_default(
                next(f for f in dataclasses.fields(cls) if f.name == name))  # type: ignore[arg-type]
            values[name] = build_config(tp, value, f"{where}{name}: ", start)
        elif tp is Path and value is not None:
            values[name] = Path(value)
        elif typing.get_origin(tp) is tuple and value is not None:
            values[name] = tuple(value)
    try:
        cfg = dataclasses.replace(base, **values) if base is not None else cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{cls.__name__}: {e}") from e
    check = getattr(cfg, "check", None)
    if callable(check):
        check()
    return cfg


def config_from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The job's config from parsed arguments made by :func:`add_config_args`."""
    return load_config(cls, getattr(args, "config", None), **{n: getattr(args, n, None) for n in flag_names(cls)})


def flag_names(cls: type, prefix: str = "", hidden: Collection[str] = ()) -> list[str]:
    """Every flag's destination for ``cls``: its fields, and its components' fields dotted."""
    hints = typing.get_type_hints(cls)
    names: list[str] = []
    for f in dataclasses.fields(cls):
        tp = _base_type(hints[f.name])
        if _nested(tp):
            names += flag_names(tp, prefix + f.name + ".", _filled(cls, f.name))
        elif f.name not in hidden:
            names.append(prefix + f.name)
    return names


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain YAML/JSON-safe dict of a config (Paths as strings, tuples as lists, components as nested dicts)."""
    def plain(v: Any) -> Any:
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v

    return {k: plain(v) for k, v in dataclasses.asdict(cfg).items()}


def config_to_args(cfg: Any, prefix: str = "", hidden: Collection[str] = ()) -> list[str]:
    """The command-line flags that rebuild ``cfg`` through :func:`add_config_args` (fields left None are left out;
    components' fields dotted, those their composite job sets itself left out): how a recipe hands a config to a
    job it starts as another process (e.g. under the deepspeed launcher)."""
    args: list[str] = []
    plain = config_to_dict(cfg)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            args += config_to_args(value, prefix + f.name + ".", _filled(type(cfg), f.name))
            continue
        value, flag = plain[f.name], "--" + (prefix + f.name).replace("_", "-")
        if value is None or f.name in hidden:
            continue
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, list):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return args


def nested_help(component: str, help_texts: dict[str, str]) -> dict[str, str]:
    """A component's help texts under its dotted flag names (``warmstart.steps``), for a composite job's help."""
    return {f"{component}.{k}": v for k, v in help_texts.items()}


def add_job(sub: argparse._SubParsersAction, name: str, cls: type[T], run: Callable[[T], None], summary: str,
            description: str = "", help_texts: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """A subcommand whose flags are the fields of the job's config dataclass ``cls`` (plus ``--config``); it calls
    ``run(config)``."""
    p = sub.add_parser(name, help=summary, description=description or summary)
    add_config_args(p, cls, help_texts)
    p.set_defaults(func=lambda args: run(config_from_args(cls, args)))
    return p
