"""Subcommands that work on trained or frozen models: ``qfx freeze`` and ``qfx info``."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def _freeze(args: argparse.Namespace) -> int:
    from qfx.flows.loading import load_frozen
    from qfx.ir.graph import save_graph

    graph = load_frozen(args.model, data_root=args.data_root)
    out = Path(args.output) if args.output else Path(args.model).with_suffix(".qfx.npz")
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    save_graph(graph, out)
    print(graph.summary())
    print(f"frozen model written to {out}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from qfx.flows.loading import load_frozen

    graph = load_frozen(args.model, data_root=args.data_root)
    print(graph.summary())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``freeze`` and ``info`` to the ``qfx`` command line."""
    p = subparsers.add_parser("freeze", help="freeze a training checkpoint into an exact "
                              "integer graph (.qfx.npz)")
    p.add_argument("model", help="checkpoint.npz written by `qfx train` (with its .json)")
    p.add_argument("-o", "--output", help="output file (default: MODEL with .qfx.npz)")
    p.add_argument("--data-root", help="dataset folder, if it moved since training")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=_freeze)
    p = subparsers.add_parser("info", help="print a model's layers and fixed-point formats")
    p.add_argument("model", help="a frozen .qfx.npz or a training checkpoint")
    p.add_argument("--data-root", help="dataset folder, if it moved since training")
    p.set_defaults(func=_info)
