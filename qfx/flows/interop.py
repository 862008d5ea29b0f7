"""Interoperability files for the command line and scripts: a frozen model as ONNX / QONNX
(:func:`export_graph_file`), a (Q)ONNX file as a frozen ``.qfx.npz`` (:func:`import_graph_file`),
and a frozen model as a compiled, checked hls4ml project (:func:`export_hls4ml_file`). ONNX and
hls4ml load only when one of these runs."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from qfx.atomic import (
    FOLDER_MARKERS,
    atomic_write_bytes,
    atomic_write_text,
    check_replaceable,
    staging_dir,
    swap_into_place,
)
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

    The project is built in a temp folder beside ``out_dir`` and renamed into place only when
    hls4ml finished: a failed or interrupted build leaves an old ``out_dir`` as it was. hls4ml
    writes absolute paths into its files; they are rewritten to ``out_dir`` before the rename.
    An existing ``out_dir`` must be a folder qfx wrote (or an empty one).

    Example (compiles C++):
        >>> report = export_hls4ml_file("model.qfx.npz", "hls4ml_prj")  # doctest: +SKIP
        >>> report.bit_exact  # doctest: +SKIP
        True
    """
    from qfx.backends.hls4ml import export_hls4ml

    graph = model if isinstance(model, Graph) else load_graph(model)
    out = Path(out_dir).absolute()
    check_replaceable(out, force=True)
    with staging_dir(out, "hls4ml") as stage:
        atomic_write_text(stage / HLS4ML_MARKER, json.dumps(
            {"format": FOLDER_MARKERS[HLS4ML_MARKER], "written_by": "qfx export --backend hls4ml"},
            indent=2) + "\n")
        try:
            report = export_hls4ml(graph, stage, **options)
        except RuntimeError as err:  # name the user's folder, not the stage that is removed
            raise RuntimeError(str(err).replace(str(stage), str(out))) from None
        _relocate_text_files(stage, out)
        swap_into_place(stage, out)
    return dataclasses.replace(report, out_dir=out)


def _relocate_text_files(stage: Path, out: Path) -> None:
    """Rewrite the absolute path of ``stage`` to ``out`` in every UTF-8 text file under it."""
    old, new = str(stage.absolute()).encode(), str(out).encode()
    for path in stage.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        if old not in data:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:  # a compiled library: its debug paths are not read back
            continue
        atomic_write_bytes(path, data.replace(old, new))
