"""Exact reference executor for a frozen `Graph`: the ground truth the hardware must match.

Every node computes its full-precision result with its op's ``execute`` (proven exact in
float64: every accumulator and edge is at most 53 bits wide, see
:func:`qfx.ir.verify.check_exact`), then applies its one explicit cast to the output FixedType
(none for ``same_format`` ops such as max pooling). The result carries the raw integers of
every node on request (a trace, for locating the first layer where C++ and Python diverge) and
how many values each cast had to saturate or wrap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from qfx.ir.graph import Graph
from qfx.ir.ops import spec
from qfx.ir.verify import check_exact

__all__ = ["RunResult", "check_exact", "run_graph"]


@dataclass
class RunResult:
    """Outputs of :func:`run_graph`.

    ``outputs``: float64 values per graph output; ``raw``: their int64 mantissas;
    ``trace``: raw int64 output of every node (when asked); ``overflow``: per node, how many
    values fell outside the output format before the cast (saturated or wrapped).
    """

    outputs: list[np.ndarray]
    raw: list[np.ndarray]
    trace: dict[str, np.ndarray] = field(default_factory=dict)
    overflow: dict[str, int] = field(default_factory=dict)
    elements: dict[str, int] = field(default_factory=dict)


def run_graph(graph: Graph, x: np.ndarray | torch.Tensor | list, *, trace: bool = False,
              device: str | torch.device = "cpu") -> RunResult:
    """Run a frozen graph exactly on a batch ``x`` (float values for each graph input).

    Example:
        >>> from qfx.fixed.fixed_type import FixedType
        >>> from qfx.ir.graph import Edge, Node
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (2,), FixedType(53, 26)))
        >>> g.add_edge(Edge("q", (2,), FixedType(4, 2, rounding="RND", overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> run_graph(g, np.array([[0.3, 9.0]])).raw[0].tolist()
        [[1, 7]]
    """
    check_exact(graph)
    device = torch.device(device)
    inputs = x if isinstance(x, (list, tuple)) else [x]
    if len(inputs) != len(graph.inputs):
        raise ValueError(f"graph takes {len(graph.inputs)} input(s), got {len(inputs)}")
    env: dict[str, torch.Tensor] = {}
    for name, value in zip(graph.inputs, inputs, strict=True):
        t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value)
        expected = graph.edges[name].shape
        if tuple(t.shape[1:]) != tuple(expected):
            dims = ", ".join(map(str, expected))
            raise ValueError(f"input {name!r} must have shape (batch, {dims}), "
                             f"got {tuple(t.shape)}")
        env[name] = t.to(device=device, dtype=torch.float64)
    result = RunResult(outputs=[], raw=[])
    with torch.no_grad():
        for node in graph.nodes:
            xs = [env[i] for i in node.inputs]
            op = spec(node.op)
            acc = op.execute(node, xs, device)
            out_t = graph.edges[node.output].type
            if op.same_format:
                value = acc
            else:
                over = (acc > out_t.max) | (acc < out_t.min)
                result.overflow[node.name] = int(over.sum())
                result.elements[node.name] = int(acc.numel())
                value = out_t.quantize(acc)
            env[node.output] = value
            if trace:
                result.trace[node.name] = out_t.to_int(value).cpu().numpy()
    for name in graph.outputs:
        t = graph.edges[name].type
        result.outputs.append(env[name].cpu().numpy())
        result.raw.append(t.to_int(env[name]).cpu().numpy())
    return result
