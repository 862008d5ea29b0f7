"""Interoperability files for the command line and scripts: a frozen model as ONNX / QONNX
(:func:`export_graph_file`), a (Q)ONNX file as a frozen ``.qfx.npz`` (:func:`import_graph_file`),
and a frozen model as a compiled, checked hls4ml project (:func:`export_hls4ml_file`). ONNX and
hls4ml load only when one of these runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from qfx.atomic import FOLDER_MARKERS, atomic_write_text, check_replaceable
from qfx.ir.graph import Graph
from qfx.ir.serialize import load_graph, save_graph

__all__ = ["FORMATS", "export_graph_file", "import_graph_file", "export_hls4ml_file"]

#: --format values of the ONNX exporters.
FORMATS = ("onnx", "qonnx")
#: The file that marks an hls4ml project folder as qfx's (so ``--force`` may replace it).
HLS4ML_MARKER = "qfx-hls4ml.json"


def export_graph_file(model: str | os.PathLike[str] | Graph, out: str | os.PathLike[str], *,
                      fmt: str = "onnx", opset: int | None = None,
                      batch_size: int = 1) -> Path:
    """Export a frozen model (a ``.qfx.npz`` path or a Graph) as ONNX (``fmt="onnx"``: float64
    standard ops, exact in onnxruntime) or QONNX (``fmt="qonnx"``). Returns the written path.
    ``opset`` None is the exporters' default (``qfx.backends.onnx._common.DEFAULT_OPSET``).

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
    from qfx.backends.onnx._common import DEFAULT_OPSET
    from qfx.backends.onnx.export import export_onnx
    from qfx.backends.onnx.qonnx_export import export_qonnx

    opset = DEFAULT_OPSET if opset is None else opset
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
    check_replaceable(out_dir, force=False)  # a fresh folder: the caller removed an old one
    out = Path(out_dir)
    out.mkdir(parents=True)
    # the marker first: a failed build still leaves a folder that --force may replace
    atomic_write_text(out / HLS4ML_MARKER, json.dumps(
        {"format": FOLDER_MARKERS[HLS4ML_MARKER], "written_by": "qfx export --backend hls4ml"},
        indent=2) + "\n")
    return export_hls4ml(graph, out_dir, **options)
