"""The ``qfx`` command line: ``qfx train``, ``qfx export``, ``qfx import``, ``qfx csim``,
``qfx flow run``, ``qfx ptq``, ...

One module of this package per command group registers its subcommands through a
``register(subparsers)`` function (:mod:`qfx.cli.train`, :mod:`qfx.cli.flow`,
:mod:`qfx.cli.export`, :mod:`qfx.cli.convert`, :mod:`qfx.cli.csim`, :mod:`qfx.cli.boards`);
this module assembles them and turns errors into a one-line message and an exit code that
means the same for every command (``--debug``, before or after the subcommand, shows the
traceback instead):

* 0 (:data:`EXIT_OK`): success;
* 1 (:data:`EXIT_FAILED`): the check failed: not bit-exact, a flow criterion failed;
* 2 (:data:`EXIT_USAGE`): bad input or usage: a bad option, a missing or malformed file, a
  folder or file that is not qfx's to replace;
* 3 (:data:`EXIT_TOOL`): a tool failed: the C++ compiler, the HLS tools or hls4ml missing or
  crashed, a simulation that crashed or timed out;
* 4 (:data:`EXIT_INTERNAL`): an internal error (a bug in qfx: please report it with --debug);
* 130: interrupted (Ctrl-C).

The command line is the top layer: it may use every other part of qfx, and nothing below
imports it.
"""

from __future__ import annotations

import argparse
import importlib
import pickle
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["EXIT_FAILED", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_TOOL",
           "EXIT_USAGE", "build_parser", "exit_code", "main"]

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

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TOOL = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """exit codes (the same for every command):
  0    success
  1    verification failed (not bit-exact, a flow criterion failed)
  2    bad input or usage (bad option, missing or malformed file, output not qfx's to replace)
  3    tool failure (C++ compiler, HLS tools or hls4ml missing or crashed, simulation crashed)
  4    internal error (a bug in qfx; rerun with --debug and report the traceback)
  130  interrupted

--debug (before or after the command) shows the traceback of an error."""


def exit_code(err: BaseException) -> int:
    """The exit code of an error (see the module docstring): bad input 2, tool failure 3,
    interrupted 130, anything else (a bug) 4 -- never 1, which means "the check failed".

    Example:
        >>> [exit_code(e) for e in (ValueError("bad"), FileExistsError("x"),
        ...                         RuntimeError("g++ crashed"), KeyError("x"))]
        [2, 2, 3, 4]
    """
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(err, (RuntimeError, subprocess.SubprocessError)):
        return EXIT_TOOL
    if isinstance(err, (ValueError, OSError, pickle.UnpicklingError)):
        return EXIT_USAGE
    return EXIT_INTERNAL


def _add_debug(parser: argparse.ArgumentParser) -> None:
    """``--debug`` on every subcommand too (``qfx export ... --debug``); SUPPRESS keeps a
    ``qfx --debug export`` from being reset by the subcommand's default."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                if "--debug" not in sub._option_string_actions:
                    sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                     help="show the traceback of an error")
                _add_debug(sub)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser with every available subcommand."""
    from qfx import __version__

    parser = argparse.ArgumentParser(
        prog="qfx",
        description="Train fixed-point PyTorch models with learned binary points and deploy "
                    "them bit-exactly to FPGAs through HLS.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"qfx {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module, attr in _COMMANDS:
        getattr(importlib.import_module(module), attr)(sub)
    _add_debug(parser)
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
        return EXIT_INTERRUPTED
    except Exception as err:
        if args.debug:
            raise
        code = exit_code(err)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        if code == EXIT_INTERNAL:  # a bug, not bad input: still one line, traceback on request
            print(f"qfx {args.command}: internal error: {type(err).__name__}: {first} (rerun "
                  "with --debug for the traceback)", file=sys.stderr)
        else:
            print(f"qfx {args.command}: error: {first}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
