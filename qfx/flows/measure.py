"""The exact resource measurement a budgeted training calibrates its cost to: the HLS export
estimate of the frozen model, in total and per layer (keyed by the module each IR node came
from), on the board, reuse and architecture of the design being built."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from qfx.training.budget import Measurement

__all__ = ["EstimateMeasure", "estimate_measure", "reuse_is_searched"]

_RESOURCES = ("lut", "ff", "dsp")


@dataclass(frozen=True)
class EstimateMeasure:
    """``measure(model, example)``: freeze ``model`` (eval mode) and estimate it on ``board``
    at ``reuse`` and ``io`` (see :func:`estimate_measure`). A plain object, not a closure, so
    that it travels to the processes of a distributed training (they pickle what they get)."""

    board: str | None = "ultra96"
    reuse: Any = 1
    io: str = "parallel"
    ebops: bool = False

    def __call__(self, model: nn.Module, example: Any) -> Measurement:
        from qfx.backends.hls.estimate import estimate_resources
        from qfx.frontends.pytorch import freeze
        from qfx.ir.graph import sanitize_identifier

        device = next(model.parameters()).device
        graph = freeze(model.eval(), example.to(device))
        reuse = self.reuse
        if reuse_is_searched(reuse):  # the least a design of these formats can cost
            from qfx.backends.hls.autofold import most_folded

            reuse = most_folded(graph, board=self.board, io=self.io,
                                reuse=reuse if isinstance(reuse, Mapping) else None)
        report = estimate_resources(graph, reuse=reuse, board=self.board, io=self.io)
        t = report.total
        total = {k: float(getattr(t, k)) for k in _RESOURCES}
        if self.ebops:
            total["ebops"] = graph_ebops(graph)
        module = {sanitize_identifier(path): path for path, _ in model.named_modules() if path}
        layers = {module[row.node]: {k: float(getattr(row, k)) for k in _RESOURCES}
                  for row in report.layers if row.node in module}
        return Measurement.of(Measurement(total, layers))


def estimate_measure(*, board: str | None = "ultra96", reuse: Any = 1, io: str = "parallel",
                     ebops: bool = False) -> Callable[[nn.Module, Any], Measurement]:
    """``measure(model, example)``: freeze ``model`` (eval mode) and estimate it.

    ``reuse="auto"`` (or a mapping with ``"auto"`` entries, as the export takes it) measures
    the most folded design (:func:`qfx.backends.hls.autofold.most_folded`): the export's
    search then unfolds from there within its budget, so the formats the training reaches
    leave a design that fits (measured fully parallel, a DS-CNN's start was 100x a PYNQ-Z2).

    ``ebops`` adds HGQ's EBOPs of the frozen graph to the totals (per dense/conv weight that
    is not zero, weight width x input width; a convolution kernel counted once).

    Example:
        >>> import torch, qfx
        >>> from qfx.zoo import digits_cnn
        >>> m = qfx.quantize_model(digits_cnn(), {"bits": 4}, torch.rand(8, 1, 8, 8))
        >>> got = estimate_measure(reuse=16)(m, torch.rand(1, 1, 8, 8))
        >>> got.layers["features.1.0"]["lut"] > got.layers["features.0.0"]["lut"] > 0
        True
    """
    return EstimateMeasure(board=board, reuse=reuse, io=io, ebops=ebops)


def reuse_is_searched(reuse: Any) -> bool:
    """Whether the export chooses (some) reuse factors itself (``"auto"``, or ``"*": "auto"``
    in a mapping), by the export's own rule (a reuse it refuses raises its ValueError)."""
    from qfx.backends.hls.export import check_reuse_options

    return check_reuse_options(reuse, 1.0, None, None)[1]


def graph_ebops(graph: Any) -> float:
    """HGQ's EBOPs of a frozen graph: per dense/conv weight that is not zero, weight width x
    input width (a convolution kernel counted once, as HGQ2 counts a layer reused per pixel)."""
    import numpy as np

    total = 0.0
    for node in graph.nodes:
        w_t = node.attrs.get("weight_type")
        if w_t is None or "weight" not in node.params:
            continue
        x_w = graph.edges[node.inputs[0]].type.width
        total += float(np.count_nonzero(node.params["weight"])) * w_t.width * x_w
    return total
