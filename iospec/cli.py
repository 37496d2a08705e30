"""``iospec``: one command, a subcommand per job.

Each subcommand lives in a module of `iospec.commands` exposing ``register(subparsers)``;
bad input of any kind (unknown model, bound, malformed file) is reported as a single line
``iospec: error: ...`` with exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from model.core.errors import ConfigError, ModelDefinitionError

from .errors import UserError

__all__ = ["main"]

#: modules under iospec.commands, in the order ``--help`` lists them
COMMANDS = ["explore", "check-trace", "diagrams", "verify", "differential"]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="iospec",
        description=(
            "An executable, formally checked specification of how workerd handles a request "
            "(IncomingRequest, IoContext, IoOwn/DeleteQueue, AsyncLock, WorkerEntrypoint)."
        ),
        epilog="Run 'iospec COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser)
    for name in COMMANDS:
        importlib.import_module(f"iospec.commands.{name.replace('-', '_')}").register(sub)
    return parser


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (UserError, ConfigError, ModelDefinitionError) as e:
        print(f"iospec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("iospec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
