"""Overflow statistics: how often each layer's output format saturated or wrapped on data.

Each report accumulates executor results (``add``), so several can share one run of the graph
over the data (:func:`run_batches`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from qfx.fixed.fixed_type import FixedType
from qfx.ir.executor import RunResult, run_graph
from qfx.ir.graph import Graph

__all__ = ["OverflowReport", "overflow_report", "OutputSaturation", "output_saturation",
           "run_batches"]


@dataclass
class OverflowReport:
    """Per node: values outside the output format (before its cast) and values seen.

    ``str(report)`` is a table; ``report.worst()`` names the node with the highest rate.
    """

    graph: Graph
    overflowed: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)

    def rate(self, node: str) -> float:
        return self.overflowed[node] / max(self.total[node], 1)

    def add(self, res: RunResult) -> None:
        """Count one batch's executor result."""
        for name, count in res.overflow.items():
            self.overflowed[name] = self.overflowed.get(name, 0) + count
            self.total[name] = self.total.get(name, 0) + res.elements[name]

    def worst(self) -> tuple[str, float] | None:
        if not self.total:
            return None
        name = max(self.total, key=self.rate)
        return name, self.rate(name)

    def __str__(self) -> str:
        rows = [f"{'node':24s} {'output type':36s} {'overflowed':>12s} {'of':>12s} {'rate':>8s}"]
        for n in self.graph.nodes:
            if n.name not in self.total:
                continue
            t = self.graph.edges[n.output].type
            mode = "saturated" if t.overflow.startswith("SAT") else "wrapped"
            rows.append(f"{n.name:24s} {t.cpp():36s} {self.overflowed[n.name]:12d} "
                        f"{self.total[n.name]:12d} {100 * self.rate(n.name):7.3f}%  ({mode})")
        return "\n".join(rows)


def overflow_report(graph: Graph, data, batch_size: int = 256) -> OverflowReport:
    """Run ``data`` (a tensor/array of inputs, or an iterable of batches or (x, y) pairs)
    through the frozen graph and count, per node, the values its output format could not hold.

    Example:
        >>> from qfx.fixed.fixed_type import FixedType
        >>> from qfx.ir.graph import Edge, Node
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (1,), FixedType(4, 2, overflow="SAT")))
        >>> g.add_edge(Edge("q", (1,), FixedType(4, 2, overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> overflow_report(g, np.array([[0.5], [7.0]])).overflowed
        {'q': 1}
    """
    report = OverflowReport(graph)
    for res in run_batches(graph, data, batch_size):
        report.add(res)
    return report


def run_batches(graph: Graph, data, batch_size: int = 256) -> Iterator[RunResult]:
    """The executor's result on each batch of ``data`` (a tensor/array of inputs, or an
    iterable of batches or (x, y) pairs), one batch at a time."""
    if isinstance(data, (np.ndarray, torch.Tensor)):
        batches = (data[i:i + batch_size] for i in range(0, len(data), batch_size))
    else:
        batches = (b[0] if isinstance(b, (tuple, list)) else b for b in data)
    for batch in batches:
        yield run_graph(graph, batch)


@dataclass
class OutputSaturation:
    """Saturation of a graph's (first) output, read as a classifier's logits.

    ``clipped`` of ``values`` output values fell outside the output format (before its cast);
    ``ties`` of ``samples`` rows have their largest value more than once (an argmax tie: the
    first class wins), ``ties_at_max`` of them at the format's largest value (ties that
    saturation made: a wider range would have told the classes apart).
    """

    node: str
    type_cpp: str
    clipped: int = 0
    values: int = 0
    ties: int = 0
    ties_at_max: int = 0
    samples: int = 0

    @classmethod
    def of(cls, graph: Graph) -> OutputSaturation:
        """An empty count for ``graph``'s first output."""
        node = next(n for n in graph.nodes if n.output == graph.outputs[0])
        return cls(node.name, graph.edges[graph.outputs[0]].type.cpp())

    def add(self, res: RunResult, out_type: FixedType) -> None:
        """Count one batch's executor result (``out_type``: the first output's format)."""
        self.clipped += res.overflow.get(self.node, 0)
        self.values += res.elements.get(self.node, 0)
        raw = res.raw[0].reshape(len(res.raw[0]), -1)
        top = raw.max(axis=1)
        tied = (raw == top[:, None]).sum(axis=1) > 1
        self.ties += int(tied.sum())
        self.ties_at_max += int((tied & (top == out_type.to_int(np.float64(out_type.max)))).sum())
        self.samples += len(raw)

    def __str__(self) -> str:
        rate = 100 * self.clipped / max(self.values, 1)
        return (f"output {self.node} {self.type_cpp}: {self.clipped:,} of {self.values:,} "
                f"values clip ({rate:.1f}%); argmax ties in {self.ties} of {self.samples} "
                f"samples ({self.ties_at_max} at the saturation level)")


def output_saturation(graph: Graph, data, batch_size: int = 256) -> OutputSaturation:
    """Count the clipped values and argmax ties of ``graph``'s first output on ``data``
    (as :func:`overflow_report` takes it).

    Example:
        >>> from qfx.fixed.fixed_type import FixedType
        >>> from qfx.ir.graph import Edge, Node
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (2,), FixedType(16, 8)))
        >>> g.add_edge(Edge("q", (2,), FixedType(4, 2, overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> s = output_saturation(g, np.array([[5.0, 3.0], [0.5, 0.25]]))
        >>> s.clipped, s.values, s.ties, s.ties_at_max
        (2, 4, 1, 1)
    """
    rep, out_type = OutputSaturation.of(graph), graph.edges[graph.outputs[0]].type
    for res in run_batches(graph, data, batch_size):
        rep.add(res, out_type)
    return rep
