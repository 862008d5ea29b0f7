"""Overflow statistics: how often each layer's output format saturated or wrapped on data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from qfx.ir.executor import run_graph
from qfx.ir.graph import Graph

__all__ = ["OverflowReport", "overflow_report"]


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
    if isinstance(data, (np.ndarray, torch.Tensor)):
        batches = [data[i:i + batch_size] for i in range(0, len(data), batch_size)]
    else:
        batches = (b[0] if isinstance(b, (tuple, list)) else b for b in data)
    for batch in batches:
        res = run_graph(graph, batch)
        for name, count in res.overflow.items():
            report.overflowed[name] = report.overflowed.get(name, 0) + count
            report.total[name] = report.total.get(name, 0) + res.elements[name]
    return report
