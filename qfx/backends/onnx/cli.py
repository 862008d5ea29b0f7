"""Command-line pieces for interoperability: ``qfx export-onnx``, ``qfx import-onnx`` and
``qfx export-hls4ml`` (``register(subparsers)``), and the plain functions behind them, which
``qfx export --format onnx|qonnx`` / ``--backend hls4ml`` can call directly."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from qfx.backends.onnx._common import DEFAULT_OPSET
from qfx.ir.graph import Graph, load_graph, save_graph

__all__ = ["register", "export_graph_file", "import_graph_file", "export_hls4ml_file", "FORMATS"]

#: --format values of the ONNX exporters.
FORMATS = ("onnx", "qonnx")


def export_graph_file(model: str | os.PathLike[str] | Graph, out: str | os.PathLike[str], *,
                      fmt: str = "onnx", opset: int = DEFAULT_OPSET,
                      batch_size: int = 1) -> Path:
    """Export a frozen model (a ``.qfx.npz`` path or a Graph) as ONNX (``fmt="onnx"``: float64
    standard ops, exact in onnxruntime) or QONNX (``fmt="qonnx"``). Returns the written path.

    Example:
        >>> import os, tempfile, qfx
        >>> from qfx.ir.graph import Edge, Graph, Node
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (2,), qfx.FixedType(8, 3)))
        >>> g.add_edge(Edge("q", (2,), qfx.FixedType(8, 3, rounding="RND", overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> export_graph_file(g, os.path.join(tempfile.mkdtemp(), "m.onnx")).name
        'm.onnx'
    """
    from qfx.backends.onnx.export import export_onnx
    from qfx.backends.onnx.qonnx_export import export_qonnx

    graph = model if isinstance(model, Graph) else load_graph(model)
    if fmt == "onnx":
        return export_onnx(graph, out, opset=opset)
    if fmt == "qonnx":
        return export_qonnx(graph, out, opset=opset, batch_size=batch_size)
    raise ValueError(f"unknown ONNX format {fmt!r}; choose one of {', '.join(FORMATS)}")


def import_graph_file(onnx_path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Import a QONNX file and save it as a frozen qfx model (``.qfx.npz``).

    Example:
        >>> import os, tempfile, qfx
        >>> from qfx.ir.graph import Edge, Graph, Node
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (2,), qfx.FixedType(8, 3)))
        >>> g.add_edge(Edge("q", (2,), qfx.FixedType(8, 3, rounding="RND", overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> d = tempfile.mkdtemp()
        >>> onnx_file = export_graph_file(g, os.path.join(d, "m.onnx"), fmt="qonnx")
        >>> import_graph_file(onnx_file, os.path.join(d, "m.qfx.npz")).name
        'm.qfx.npz'
    """
    from qfx.frontends.onnx import import_onnx

    return save_graph(import_onnx(onnx_path), out)


def export_hls4ml_file(model: str | os.PathLike[str] | Graph, out_dir: str | os.PathLike[str],
                       **options: Any) -> Any:
    """Build, compile and check the hls4ml project of a frozen model; returns the report
    (:class:`qfx.backends.hls4ml.Hls4mlReport`; ``options`` go to ``export_hls4ml``).

    Example (compiles C++):
        >>> report = export_hls4ml_file("model.qfx.npz", "hls4ml_prj")  # doctest: +SKIP
        >>> report.bit_exact  # doctest: +SKIP
        True
    """
    from qfx.backends.hls4ml import export_hls4ml

    graph = model if isinstance(model, Graph) else load_graph(model)
    return export_hls4ml(graph, out_dir, **options)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``export-onnx``, ``import-onnx`` and ``export-hls4ml`` to the ``qfx`` command line.

    Example:
        >>> parser = argparse.ArgumentParser(prog="qfx")
        >>> _ = register(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["export-onnx", "m.qfx.npz", "m.onnx"]).fmt
        'onnx'
    """
    p = subparsers.add_parser("export-onnx", help="frozen model -> ONNX (exact, float64) or QONNX",
                              description="Export a frozen qfx model (.qfx.npz) as a "
                                          "standard-ops ONNX model (bit-exact in onnxruntime) "
                                          "or as QONNX (Quant nodes).")
    p.add_argument("model", help="frozen model file (.qfx.npz)")
    p.add_argument("out", help="ONNX file to write")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="onnx")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--batch-size", type=int, default=1, help="QONNX only: fixed batch size")
    p.set_defaults(func=_run_export)

    q = subparsers.add_parser("import-onnx", help="QONNX file -> frozen qfx model",
                              description="Import a QONNX model with power-of-two scales as a "
                                          "frozen qfx model; non-exact constructs are refused.")
    q.add_argument("onnx", help="QONNX file to read")
    q.add_argument("out", help="frozen model file to write (.qfx.npz)")
    q.set_defaults(func=_run_import)

    h = subparsers.add_parser("export-hls4ml", help="frozen model -> compiled hls4ml project",
                              description="Build an hls4ml project with every precision set "
                                          "exactly, compile it, and check it bit for bit.")
    h.add_argument("model", help="frozen model file (.qfx.npz)")
    h.add_argument("out_dir", help="project directory")
    h.add_argument("--backend", default="Vitis", choices=("Vitis", "Vivado"))
    h.add_argument("--part", default=None, help="FPGA part (default: Ultra96-V2's)")
    h.add_argument("--samples", type=int, default=32, help="random test inputs to compare")
    h.set_defaults(func=_run_hls4ml)
    return p


def _run_export(args: argparse.Namespace) -> int:
    path = export_graph_file(args.model, args.out, fmt=args.fmt, opset=args.opset,
                             batch_size=args.batch_size)
    print(f"wrote {path}")
    return 0


def _run_import(args: argparse.Namespace) -> int:
    path = import_graph_file(args.onnx, args.out)
    print(f"wrote {path}")
    return 0


def _run_hls4ml(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {"backend": args.backend, "samples": args.samples}
    if args.part:
        options["part"] = args.part
    report = export_hls4ml_file(args.model, args.out_dir, **options)
    print(report.summary())
    return 0 if report.bit_exact else 1
