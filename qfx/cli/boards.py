"""``qfx boards [BOARD ...]``: the FPGA boards qfx exports to (names, parts, resources, clocks).
"""

from __future__ import annotations

import argparse
from typing import Any

from qfx.backends.hls.boards import format_board_table, list_boards, load_board

__all__ = ["register", "run_boards_command"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``boards`` subcommand to an ``argparse`` subparsers object.

    The subcommand prints :func:`format_board_table` for all built-in boards, or for the boards
    named on the command line (names, aliases or YAML files, which are validated). It sets
    ``func=run_boards_command`` as the parser default.

    Example:
        >>> parser = argparse.ArgumentParser(prog="qfx")
        >>> _ = register(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["boards", "ultra96"])
        >>> args.func(args)  # doctest: +ELLIPSIS
        name ...
        0
    """
    parser = subparsers.add_parser(
        "boards",
        help="list the FPGA boards qfx can export to",
        description="List the built-in FPGA boards (or show and validate the given ones).",
    )
    parser.add_argument(
        "boards",
        nargs="*",
        metavar="BOARD",
        help="board names, aliases or board YAML files (default: every built-in board)",
    )
    parser.set_defaults(func=run_boards_command)
    return parser


def run_boards_command(args: argparse.Namespace) -> int:
    """Handler of ``qfx boards``: print the board table and return 0.

    A bad board name or file raises :class:`BoardError` (a ``ValueError``), which ``qfx.cli``
    turns into a one-line message and a non-zero exit code.
    """
    boards = [load_board(b) for b in args.boards] if args.boards else list_boards()
    print(format_board_table(boards))
    return 0
