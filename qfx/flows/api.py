"""The Python API over the backends: what the user has (a qfx model and an example input, a
frozen :class:`~qfx.ir.graph.Graph`, a ``.qfx.npz``, a training checkpoint or a (Q)ONNX file)
becomes a frozen graph (:func:`qfx.flows.loading.resolve_graph`), and the graph goes to a
backend, which never sees anything else.

- :func:`export_hls` (``qfx.export_hls``): an HLS project for a board;
- :mod:`qfx.flows.interop`: ONNX / QONNX files in and out, and hls4ml projects.
"""

from __future__ import annotations

import os
from typing import Any

from qfx.backends.hls.boards import Board
from qfx.backends.hls.export import ExportedProject, check_export_options
from qfx.backends.hls.export import export_hls as export_graph_hls
from qfx.backends.hls.reuse import ReuseSpec
from qfx.flows.loading import resolve_graph
from qfx.ir.graph import Graph

__all__ = ["export_hls"]


def export_hls(model_or_graph: Any, example_input: Any = None,
               out_dir: str | os.PathLike[str] | None = None, *, board: Board | str = "ultra96",
               io: str = "parallel", reuse: ReuseSpec | str = 1,
               clock_mhz: float | None = None, force: bool = False, test_vectors: Any = None,
               project_name: str = "qfx_model", on_budget: str = "error",
               budget: float = 1.0, target_fps: float | None = None,
               target_latency_us: float | None = None) -> ExportedProject:
    """Export a complete HLS project for ``board`` from a qfx model, a graph or a file.

    The arguments are checked first (nothing is frozen or loaded for a bad board, clock,
    project name or an existing ``out_dir``), then ``model_or_graph`` becomes a frozen graph
    and :func:`qfx.backends.hls.export.export_hls` writes the project (see its module for the
    files, the resource-budget check and the atomic write).

    Args:
        model_or_graph: a qfx model (``torch.nn.Module`` made of qfx layers; frozen with
            ``example_input``), a frozen :class:`Graph`, or a path to a frozen ``.qfx.npz``, a
            ``qfx train`` checkpoint or a (Q)ONNX model.
        example_input: one input batch to freeze a model with (ignored otherwise); also the
            model's test vectors when ``test_vectors`` is None.
        out_dir, board, io, reuse, clock_mhz, force, project_name, on_budget, budget,
            target_fps, target_latency_us: as :func:`qfx.backends.hls.export.export_hls`
            (``reuse="auto"`` chooses every layer's factor to fit ``budget`` of the board at
            the best throughput, or the cheapest that reaches a target).
        test_vectors: float inputs ``(samples, *input_shape)`` (a list for several inputs), or
            an int N for N pseudo-random samples; ``None``: the ``example_input`` of a model,
            else :data:`~qfx.backends.hls.export.DEFAULT_RANDOM_SAMPLES` random samples.

    Example:
        >>> import qfx, torch, tempfile, os
        >>> from qfx.nn import QInput, QLinear, QReLU
        >>> net = torch.nn.Sequential(QInput(8), QLinear(6, 4), QReLU(), QLinear(4, 3))
        >>> with qfx.calibration(net):
        ...     _ = net(torch.randn(64, 6))
        >>> prj = export_hls(net, torch.randn(1, 6), os.path.join(tempfile.mkdtemp(), "mlp"),
        ...                  board="ultra96", project_name="mlp", test_vectors=torch.randn(4, 6))
        >>> prj.axis_top, prj.board.name, prj.report.fits
        ('mlp_axis', 'ultra96v2', True)
    """
    check_export_options(out_dir, board=board, io=io, reuse=reuse, clock_mhz=clock_mhz,
                         force=force, project_name=project_name, on_budget=on_budget,
                         budget=budget, target_fps=target_fps,
                         target_latency_us=target_latency_us)
    graph = resolve_graph(model_or_graph, example_input)
    from_model = not isinstance(model_or_graph, (Graph, str, os.PathLike))
    if test_vectors is None and from_model and example_input is not None:
        test_vectors = example_input
    return export_graph_hls(graph, out_dir, board=board, io=io, reuse=reuse,
                            clock_mhz=clock_mhz, force=force, test_vectors=test_vectors,
                            project_name=project_name, on_budget=on_budget, budget=budget,
                            target_fps=target_fps, target_latency_us=target_latency_us)
