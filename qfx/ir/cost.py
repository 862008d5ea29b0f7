"""Arithmetic cost of a frozen graph: true multipliers, shift-add terms, XNOR bits, adder bits
(each op counts its own in ``OpSpec.cost``; the rules below are theirs).

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

from dataclasses import dataclass, fields

from qfx.ir.graph import Graph
from qfx.ir.ops import NodeCost, spec

__all__ = ["NodeCost", "CostReport", "cost_report", "binary_edges"]

_COUNTS = ("macs", "multipliers", "mult_ops", "shift_add_terms", "xnor_bits", "additions",
           "adder_bits", "comparisons")


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
        op = spec(n.op)
        if op.makes_binary or (op.keeps_binary and n.inputs[0] in out):
            out.add(n.output)
    return out


def cost_report(graph: Graph) -> CostReport:
    """Count multipliers, shift-add terms, XNOR bits and adder bits of every node of ``graph``
    (per inference; see the module docstring for the exact rules).

    Example:
        >>> cost_report(Graph()).nodes
        []
    """
    binary = binary_edges(graph)
    return CostReport([
        spec(n.op).cost(n, [graph.edges[i] for i in n.inputs], graph.edges[n.output],
                        n.inputs[0] in binary)
        for n in graph.nodes])
