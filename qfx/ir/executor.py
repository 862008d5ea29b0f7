"""Exact reference executor for a frozen `Graph`: the ground truth the hardware must match.

Every node computes its full-precision result (proven exact in float64: every accumulator
and edge is at most 53 bits wide, see :func:`check_exact`), then applies its one explicit
cast to the output FixedType. The result carries the raw integers of every node on request
(a trace, for locating the first layer where C++ and Python diverge) and how many values each
cast had to saturate or wrap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.kernels import FLOAT64_EXACT_BITS, exact_conv2d, exact_linear, exact_sum_pool2d
from qfx.ir.graph import Graph, Node, pair

__all__ = ["RunResult", "run_graph", "check_exact"]


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


def check_exact(graph: Graph) -> None:
    """Raise if any edge or accumulator is too wide for exact float64 evaluation."""
    for node in graph.nodes:
        types = [graph.edges[node.output].type] + [
            v for v in node.attrs.values() if isinstance(v, FixedType)]
        for t in types:
            if t.width > FLOAT64_EXACT_BITS:
                raise ValueError(
                    f"node {node.name!r} ({node.source or node.op}) needs a {t.cpp()} "
                    f"intermediate: more than {FLOAT64_EXACT_BITS} bits cannot be evaluated "
                    "exactly; reduce the widths of this layer's inputs, weights or bias"
                )


def _values(t: FixedType, raw: np.ndarray, device: torch.device) -> torch.Tensor:
    return t.from_int(torch.from_numpy(raw).to(device))


def _accumulate(node: Node, xs: list[torch.Tensor], graph: Graph,
                device: torch.device) -> torch.Tensor:
    """The full-precision result of one node, before its output cast."""
    a = node.attrs
    x = xs[0]
    if node.op == "input":
        return x
    if node.op in ("dense", "conv2d"):
        w = _values(a["weight_type"], node.params["weight"], device)
        b = _values(a["bias_type"], node.params["bias"], device) if "bias" in node.params else None
        if node.op == "dense":
            return exact_linear(x, w, b)
        return exact_conv2d(x, w, b, pair(a["stride"]), pair(a["padding"]),
                            pair(a["dilation"]), int(a["groups"]))
    if node.op == "batchnorm":
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = _values(a["scale_type"], node.params["scale"], device).view(shape)
        shift = _values(a["shift_type"], node.params["shift"], device).view(shape)
        return x * scale + shift
    if node.op == "relu":
        return torch.clamp(x, min=0.0)
    if node.op == "hardtanh":
        t = a["clamp_type"]
        return torch.clamp(x, min=float(np.ldexp(a["min_raw"], -t.frac_bits)),
                           max=float(np.ldexp(a["max_raw"], -t.frac_bits)))
    if node.op == "add":
        return xs[0] + xs[1]
    if node.op == "maxpool2d":
        return F.max_pool2d(x, pair(a["kernel"]), pair(a["stride"]), pair(a["padding"]),
                            pair(a["dilation"]), bool(a["ceil_mode"]))
    if node.op == "avgpool2d":
        s = exact_sum_pool2d(x, pair(a["kernel"]), pair(a["stride"]))
        if "recip" in node.params:
            return s * float(_values(a["recip_type"], node.params["recip"], device)[0])
        return torch.ldexp(s, torch.tensor(-float(a["shift"]), dtype=torch.float64,
                                           device=device))
    if node.op == "flatten":
        return x.reshape(x.shape[0], -1)
    if node.op in ("binary_dense", "binary_conv2d"):
        return _binary(node, x, device)
    if node.op == "threshold":
        shape = (1, -1) + (1,) * (x.dim() - 2)
        t = _values(a["threshold_type"], node.params["threshold"], device).view(shape)
        up = torch.from_numpy(node.params["direction"]).to(device).view(shape) > 0
        positive = torch.where(up, x >= t, x <= t)
        return torch.where(positive, 1.0, -1.0).to(torch.float64)
    if node.op == "thermometer":
        t = _values(a["threshold_type"], node.params["thresholds"], device)
        bits = x.unsqueeze(2) >= t.view((1, 1, -1) + (1,) * (x.dim() - 2))
        return torch.where(bits, 1.0, -1.0).to(torch.float64).flatten(1, 2)
    raise ValueError(f"node {node.name!r}: the executor has no rule for op {node.op!r}")


def _binary(node: Node, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """binary_dense / binary_conv2d by the XNOR-popcount formula on bits (1 <-> +1)."""
    if bool(((x != 1) & (x != -1)).any()):
        raise ValueError(f"node {node.name!r} ({node.op}) got inputs other than -1/+1")
    a = node.attrs
    xb = (x > 0).to(torch.float64)
    wb = torch.from_numpy(node.params["weight"] > 0).to(device, torch.float64)
    n = int(a["fan_in"])
    if node.op == "binary_dense":
        # popcount(XNOR) = matches of ones + matches of zeros
        pop = exact_linear(xb, wb, None) + exact_linear(1 - xb, 1 - wb, None)
        shape: tuple[int, ...] = (1, -1)
    else:
        ph, pw = pair(a["padding"])
        if int(a["pad_value"]) != -1:
            raise ValueError(f"node {node.name!r}: pad_value must be -1, got {a['pad_value']}")
        ones = F.pad(xb, (pw, pw, ph, ph), value=0.0)  # a padded -1 is a 0 bit
        zeros = F.pad(1 - xb, (pw, pw, ph, ph), value=1.0)
        args = (None, pair(a["stride"]), (0, 0), pair(a["dilation"]), int(a["groups"]))
        pop = exact_conv2d(ones, wb, *args) + exact_conv2d(zeros, 1 - wb, *args)
        shape = (1, -1, 1, 1)
    dot = 2 * pop - n
    if "scale" in node.params:
        return dot * _values(a["scale_type"], node.params["scale"], device).view(shape)
    return dot


# ops whose output has the input's format and values: no cast happens
_NO_CAST = {"maxpool2d", "flatten"}


def run_graph(graph: Graph, x: np.ndarray | torch.Tensor | list, *, trace: bool = False,
              device: str | torch.device = "cpu") -> RunResult:
    """Run a frozen graph exactly on a batch ``x`` (float values for each graph input).

    Example:
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
            acc = _accumulate(node, xs, graph, device)
            out_t = graph.edges[node.output].type
            if node.op in _NO_CAST:
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
