"""The ``qfx`` command line: ``qfx train``, ``qfx export``, ``qfx import``, ``qfx csim``,
``qfx flow run``, ``qfx ptq``, ...

One module of this package per command group registers its subcommands through a
``register(subparsers)`` function (:mod:`qfx.cli.train`, :mod:`qfx.cli.flow`,
:mod:`qfx.cli.export`, :mod:`qfx.cli.convert`, :mod:`qfx.cli.csim`, :mod:`qfx.cli.boards`);
this module assembles them and turns errors into a one-line message and a non-zero exit code
(``--debug`` shows the traceback). The command line is the top layer: it may use every other
part of qfx, and nothing below imports it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]

# (module, attribute) of every subcommand's register(subparsers) function
_COMMANDS: tuple[tuple[str, str], ...] = (
    ("qfx.cli.train", "register"),
    ("qfx.cli.flow", "register"),
    ("qfx.cli.export", "register"),
    ("qfx.cli.convert", "register"),
    ("qfx.cli.csim", "register"),
    ("qfx.cli.boards", "register"),
    ("qfx.cli.ptq", "register"),
)

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with every available subcommand."""
    from qfx import __version__

    parser = argparse.ArgumentParser(
        prog="qfx",
        description="Train fixed-point PyTorch models with learned binary points and deploy "
                    "them bit-exactly to FPGAs through HLS.",
    )
    parser.add_argument("--version", action="version", version=f"qfx {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module, attr in _COMMANDS:
        getattr(importlib.import_module(module), attr)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qfx`` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("qfx: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError, OSError) as err:
        if args.debug:
            raise
        print(f"qfx {args.command}: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # a bug, not bad input: still one line, traceback on request
        if args.debug:
            raise
        print(f"qfx {args.command}: internal error: {type(err).__name__}: {err} (rerun with "
              "--debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
