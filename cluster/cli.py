"""``idgenrec``: one command, one subcommand per job. ``idgenrec SUBCOMMAND --help`` explains each."""
from __future__ import annotations

import argparse
import sys

from cluster import commands, demo, eval_commands, idgen_commands, train_commands
from idgen.algorithm1 import IDSpaceExhausted
from infra.config import ConfigError
from infra.errors import DataError
from infra.logs import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idgenrec",
        description="Generative recommendation with learned textual item IDs (IDGenRec). "
                    "Each subcommand is one job; its flags match the fields of its YAML config.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    commands.register(sub)
    idgen_commands.register(sub)
    eval_commands.register(sub)
    train_commands.register(sub)
    demo.register(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parsed arguments; a flag the subcommand does not know is reported with the subcommand's usage."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(build_parser(), argv)
    setup_logging(args.verbose)
    try:
        args.func(args)
    except (DataError, ConfigError, FileNotFoundError, ValueError, IDSpaceExhausted) as e:
        print(f"idgenrec {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"idgenrec {args.command}: interrupted; finished steps are kept, the same command resumes",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
