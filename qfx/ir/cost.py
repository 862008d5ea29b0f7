"""Arithmetic cost of a frozen graph: true multipliers, shift-add terms, XNOR bits, adder bits.

Per node and in total, per inference (one sample):

* ``macs``: nominal multiply-accumulates (every weight tap, zeros included; for binary layers
  the XNOR-popcount taps; for BatchNorm one per element).
* ``multipliers``: constant multipliers that need a real multiplier (a DSP), counted once per
  distinct constant (a weight, a BatchNorm or binary-layer scale, an average-pool reciprocal)
  as a fully parallel design would instantiate them. A constant that is 0 or +-2**k, any
  K-hot constant (the node carries its CSD digits), and any weight applied to a {-1, +1}
  input (a sign flip) needs none. ``DSP`` in the table is this number: an upper bound for a
  fully parallel design, and ``0`` means the node needs no DSP at all.
* ``mult_ops``: true multiplications per inference (``multipliers`` times their reuse).
* ``shift_add_terms``: summands that are shifted and/or negated copies of an input instead of
  products: one per non-zero digit of a K-hot constant, one per +-2**k constant, one per
  non-zero weight on a {-1, +1} input.
* ``xnor_bits``: XNOR + popcount input bits of binary layers.
* ``additions``: two-input additions/subtractions: (summands - 1) per sum, plus bias/shift
  additions; a popcount of n bits counts n - 1 additions.
* ``adder_bits``: each addition times the width of the accumulator it produces
  (``acc_type``; the sum type of a pooling window), the usual LUT-cost proxy. A popcount is
  an adder tree whose adders are only as wide as their partial counts (1 + 1 bits make a
  2-bit sum, and so on), plus one ``acc_type``-wide correction ``2 * popcount - n``.
* ``comparisons``: relu/hardtanh clamps, max-pool comparisons, thresholds, thermometer bits.

Example:
    >>> import torch, qfx
    >>> from torch import nn
    >>> from qfx.nn import QInput, QLinear
    >>> with qfx.config(weight_khot=2):
    ...     net = nn.Sequential(QInput(8), QLinear(16, 4))
    >>> with qfx.calibration(net):
    ...     _ = net(torch.randn(64, 16))
    >>> report = cost_report(qfx.freeze(net, torch.randn(1, 16)))
    >>> report.total.multipliers, report.dsp_free
    (0, True)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

import numpy as np

from qfx.ir.graph import Graph, Node

__all__ = ["NodeCost", "CostReport", "cost_report", "binary_edges"]

_COUNTS = ("macs", "multipliers", "mult_ops", "shift_add_terms", "xnor_bits", "additions",
           "adder_bits", "comparisons")


@dataclass
class NodeCost:
    """Cost of one node (or the total) per inference; see the module docstring."""

    name: str
    op: str
    macs: int = 0
    multipliers: int = 0
    mult_ops: int = 0
    shift_add_terms: int = 0
    xnor_bits: int = 0
    additions: int = 0
    adder_bits: int = 0
    comparisons: int = 0

    @property
    def dsp_free(self) -> bool:
        """True when nothing in this node needs a hardware multiplier."""
        return self.multipliers == 0


@dataclass
class CostReport:
    """Per-node costs of a frozen graph and their total; ``str()`` is a table.

    Example:
        >>> report = CostReport([NodeCost("fc", "dense", macs=8, shift_add_terms=12)])
        >>> report.total.shift_add_terms, report.dsp_free
        (12, True)
    """

    nodes: list[NodeCost]

    @property
    def total(self) -> NodeCost:
        out = NodeCost("total", "")
        for n in self.nodes:
            for f in _COUNTS:
                setattr(out, f, getattr(out, f) + getattr(n, f))
        return out

    @property
    def dsp_free(self) -> bool:
        """True when the whole graph needs no hardware multiplier ("0 DSP")."""
        return self.total.multipliers == 0

    def node(self, name: str) -> NodeCost:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r} in the cost report")

    def as_dict(self) -> dict[str, dict[str, int | str]]:
        """Plain data (per node and ``"total"``), e.g. for JSON."""
        rows = [*self.nodes, self.total]
        return {r.name: {f.name: getattr(r, f.name) for f in fields(r)} for r in rows}

    def __str__(self) -> str:
        head = (f"{'node':20s} {'op':14s} {'MACs':>10s} {'mults':>7s} {'mult ops':>10s} "
                f"{'shift-add':>10s} {'xnor bits':>10s} {'additions':>10s} {'adder bits':>11s} "
                f"{'compares':>9s} {'DSP':>5s}")
        lines = [head, "-" * len(head)]
        for r in [*self.nodes, self.total]:
            if r.name == "total" and r.op == "":
                lines.append("-" * len(head))
            lines.append(f"{r.name[:20]:20s} {r.op[:14]:14s} {r.macs:10d} {r.multipliers:7d} "
                         f"{r.mult_ops:10d} {r.shift_add_terms:10d} {r.xnor_bits:10d} "
                         f"{r.additions:10d} {r.adder_bits:11d} {r.comparisons:9d} "
                         f"{r.multipliers:5d}")
        t = self.total
        if t.multipliers == 0:
            lines.append("0 DSP: every multiplication is a shift-add, a sign flip or XNOR-popcount")
        else:
            lines.append(f"{t.multipliers} constant multipliers ({t.mult_ops} multiplications "
                         "per inference) need DSPs")
        return "\n".join(lines)


def binary_edges(graph: Graph) -> set[str]:
    """Edges whose values are all -1 or +1 (threshold / thermometer outputs, and max pooling
    or flattening of those).

    Example:
        >>> binary_edges(Graph())
        set()
    """
    out: set[str] = set()
    for n in graph.nodes:
        if n.op in ("threshold", "thermometer") or (
                n.op in ("maxpool2d", "flatten") and n.inputs[0] in out):
            out.add(n.output)
    return out


def _is_pow2_or_zero(raw: np.ndarray) -> np.ndarray:
    mag = np.abs(raw.astype(np.int64))
    return (mag & (mag - 1)) == 0


def _nonzero_digits(node: Node, key: str) -> np.ndarray:
    """Number of non-zero CSD digits per constant of a K-hot param."""
    return np.count_nonzero(node.params[f"{key}_digits"][..., 0], axis=-1)


def _constant_terms(node: Node, key: str, binary_input: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per constant: (needs a true multiplier, shift-add summands it contributes)."""
    raw = node.params[key]
    if f"{key}_digits" in node.params:
        return np.zeros(raw.shape, dtype=bool), _nonzero_digits(node, key)
    nonzero = raw != 0
    if binary_input:
        return np.zeros(raw.shape, dtype=bool), nonzero.astype(np.int64)
    cheap = _is_pow2_or_zero(raw)
    return ~cheap, (nonzero & cheap).astype(np.int64)


@functools.lru_cache(maxsize=256)
def _popcount_tree_bits(n: int) -> int:
    """Adder bits of a balanced tree summing n single bits (each sum as wide as its count)."""
    counts, bits = [1] * n, 0
    while len(counts) > 1:
        paired = [a + b for a, b in zip(counts[::2], counts[1::2], strict=False)]
        bits += sum(c.bit_length() for c in paired)
        counts = paired + (counts[-1:] if len(counts) % 2 else [])
    return bits


def _positions(graph: Graph, node: Node) -> int:
    shape = graph.edges[node.output].shape
    return math.prod(shape[1:]) if len(shape) > 1 else 1


def _elements(graph: Graph, edge: str) -> int:
    return math.prod(graph.edges[edge].shape)


def _node_cost(graph: Graph, node: Node, binary: set[str]) -> NodeCost:
    c = NodeCost(node.name, node.op)
    a = node.attrs
    out_elems = _elements(graph, node.output)
    if node.op in ("dense", "conv2d"):
        w = node.params["weight"]
        rows, per_row = w.shape[0], w[0].size
        pos = _positions(graph, node) if node.op == "conv2d" else 1
        mult, shift = _constant_terms(node, "weight", node.inputs[0] in binary)
        summands = mult.reshape(rows, -1).sum(1) + shift.reshape(rows, -1).sum(1)
        if "bias" in node.params:
            summands = summands + (node.params["bias"] != 0)
        c.macs = rows * per_row * pos
        c.multipliers = int(mult.sum())
        c.mult_ops = c.multipliers * pos
        c.shift_add_terms = int(shift.sum()) * pos
        c.additions = int(np.maximum(summands - 1, 0).sum()) * pos
        c.adder_bits = c.additions * a["acc_type"].width
    elif node.op == "batchnorm":
        per_channel = out_elems // node.params["scale"].size
        mult, shift = _constant_terms(node, "scale")
        summands = mult.astype(np.int64) + shift + (node.params["shift"] != 0)
        c.macs = out_elems
        c.multipliers = int(mult.sum())
        c.mult_ops = c.multipliers * per_channel
        c.shift_add_terms = int(shift.sum()) * per_channel
        c.additions = int(np.maximum(summands - 1, 0).sum()) * per_channel
        c.adder_bits = c.additions * a["acc_type"].width
    elif node.op in ("binary_dense", "binary_conv2d"):
        n = int(a["fan_in"])
        per_channel = out_elems // node.params["weight"].shape[0]
        c.macs = c.xnor_bits = out_elems * n
        c.additions = out_elems * n  # popcount tree (n - 1) + the 2p - n correction
        c.adder_bits = out_elems * (_popcount_tree_bits(n) + a["acc_type"].width)
        if "scale" in node.params:
            mult, shift = _constant_terms(node, "scale")
            c.multipliers = int(mult.sum())
            c.mult_ops = c.multipliers * per_channel
            c.shift_add_terms = int(shift.sum()) * per_channel
            extra = int(np.maximum(shift - 1, 0).sum()) * per_channel
            c.additions += extra
            c.adder_bits += extra * a["acc_type"].width
    elif node.op == "avgpool2d":
        area = int(np.prod(a["kernel"]))
        c.additions = out_elems * (area - 1)
        c.adder_bits = c.additions * a["sum_type"].width
        if "recip" in node.params and not _is_pow2_or_zero(node.params["recip"]).all():
            c.multipliers, c.mult_ops = 1, out_elems
    elif node.op == "add":
        c.additions = out_elems
        c.adder_bits = out_elems * a["acc_type"].width
    elif node.op in ("relu", "threshold"):
        c.comparisons = out_elems
    elif node.op == "hardtanh":
        c.comparisons = 2 * out_elems
    elif node.op == "thermometer":
        c.comparisons = out_elems
    elif node.op == "maxpool2d":
        c.comparisons = out_elems * (int(np.prod(a["kernel"])) - 1)
    return c


def cost_report(graph: Graph) -> CostReport:
    """Count multipliers, shift-add terms, XNOR bits and adder bits of every node of ``graph``
    (per inference; see the module docstring for the exact rules).

    Example:
        >>> cost_report(Graph()).nodes
        []
    """
    binary = binary_edges(graph)
    return CostReport([_node_cost(graph, n, binary) for n in graph.nodes])
