"""``qfx import MODEL.onnx -o MODEL.qfx.npz``: a QONNX/ONNX model -> a frozen qfx model.

The model is imported exactly (:func:`qfx.frontends.onnx.import_onnx`: power-of-two scales;
anything without an exact fixed-point meaning is refused, naming the node) and saved with
:func:`qfx.ir.save_graph`, ready for ``qfx info``, ``qfx export`` and ``qfx csim``. ``qfx export``
also takes the ``.onnx`` file directly; the other direction is ``qfx export MODEL --format
onnx|qonnx -o FILE``. Errors are one line on stderr with exit status 2 (``qfx.cli``);
nothing is written then.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register", "run_import_command"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``import`` subcommand to an ``argparse`` subparsers object.

    Example:
        >>> parser = argparse.ArgumentParser(prog="qfx")
        >>> _ = register(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["import", "m.onnx", "-o", "m.qfx.npz"])
        >>> args.func is run_import_command, args.model, args.output, args.force, args.check
        (True, 'm.onnx', 'm.qfx.npz', False, 8)
        >>> args.prune, parser.parse_args(["import", "m.onnx", "--no-prune"]).prune
        (True, False)
    """
    p = subparsers.add_parser(
        "import", help="import a QONNX/ONNX model as a frozen qfx model (.qfx.npz)",
        description="Import a QONNX model with power-of-two scales (e.g. from Brevitas, or "
                    "qfx export --format qonnx) as a frozen qfx model; constructs without an "
                    "exact fixed-point meaning are refused, naming the node.")
    p.add_argument("model", metavar="MODEL.onnx", help="the (Q)ONNX file to read")
    p.add_argument("-o", "--output", metavar="OUT.qfx.npz",
                   help="frozen model to write (default: MODEL with .qfx.npz)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--graph-output", metavar="NAME", action="append", dest="graph_outputs",
                   help="import only this graph output (ONNX tensor name; repeatable); default: "
                        "every computed output (constant outputs, e.g. a QuantTensor's scale, "
                        "are dropped)")
    p.add_argument("--check", metavar="N", type=int, default=8,
                   help="random samples run through the imported graph and the source model "
                        "(qonnx / onnxruntime) to report whether they agree (0: no check; "
                        "default 8)")
    p.add_argument("--no-prune", action="store_false", dest="prune",
                   help="keep every channel (default: drop the channels the model provably "
                        "does not need, constant ones such as zero-weight or dead channels, "
                        "as qfx.freeze does; the outputs are the same bits)")
    p.set_defaults(func=run_import_command)
    return p


def _default_output(model: Path) -> Path:
    name = model.name[: -len(model.suffix)] if model.suffix else model.name
    return model.with_name(f"{name}.qfx.npz")


def run_import_command(args: argparse.Namespace) -> int:
    """Handler of ``qfx import``: import, save, print the graph's summary, return 0.

    Errors are raised (``FileNotFoundError``, ``FileExistsError``, ``OnnxImportError`` - a
    ``ValueError``), which ``qfx.cli`` prints as one line with exit status 2 (bad input).
    """
    from qfx.atomic import check_replaceable_file
    from qfx.frontends.onnx import import_onnx
    from qfx.ir.serialize import save_graph

    model = Path(args.model)
    out = Path(args.output) if args.output else _default_output(model)
    check_replaceable_file(out, force=args.force)  # only a frozen model qfx wrote
    if args.check < 0:
        raise ValueError(f"--check must be >= 0, got {args.check}")
    graph = import_onnx(model, outputs=args.graph_outputs, check=args.check, prune=args.prune)
    written = save_graph(graph, out)
    print(graph.summary())
    if "source_check" in graph.meta:
        print(graph.meta["source_check"])
    print(f"frozen model written to {written}")
    return 0
