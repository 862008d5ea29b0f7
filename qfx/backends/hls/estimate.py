"""Analytical resource and latency **estimate** of the HLS design that ``export_firmware`` writes.

Everything here is an estimate from a documented model of the generated C++ (the folding and
pragmas of :mod:`qfx.backends.hls.writer`), never a synthesis result: only Vitis HLS / Vivado
give real numbers. The model is deliberately simple, monotone in the reuse factor and
explainable line by line; every report built from it says "estimate".

Parallelism (the writer's folding, :func:`qfx.backends.hls.reuse.fold` / ``unroll``; each op's
model is its HLS rule in :mod:`qfx.backends.hls.rules`, the primitives are in
:mod:`qfx.backends.hls.costmodel`):

* dense / conv2d (and binary_dense / binary_conv2d): with reduction length K per output (n_in,
  or C/groups*KH*KW) and P outputs in the unrollable loop (n_out for dense, OH*OW for conv: the
  output-channel loop of a convolution stays sequential), the writer allows
  ``M = min(ceil(K*P / reuse), 4096)`` multipliers and unrolls ``red = min(K, M)`` along the
  reduction and ``out = max(1, min(P // reuse, M // red, 4096 // red))`` along the outputs:
  ``red * out <= M`` parallel multipliers, busy ``ceil(P/out) * ceil(K/red)`` cycles (times
  C_out for a conv); a shorter reduction (a pruned layer) never gets more multipliers.
* element-wise layers (input cast, BatchNorm per channel, ReLU, HardTanh, add, threshold,
  thermometer) get ``u = min(n, ceil(n / reuse), 4096)`` lanes; pooling ``4096 // (KH*KW)`` at
  most.
* ``reuse`` is each layer's own factor: an int for the whole model, or a mapping
  ``{node_name: reuse, "*": default}`` (the writer's per-layer reuse). A layer's multipliers,
  II and latency depend on its own factor only; its input array's partitioning (the banks of
  the producing layer's output, below) follows the lanes of every layer that reads it.

Multipliers (``n_mults`` = the nominal multiplications per inference, ``qfx.ir.cost``'s MACs):

* The true multiplications ``T`` come from :func:`qfx.ir.cost.cost_report` (``mult_ops``): a
  weight that is 0 or +-2^k, any K-hot constant, and any weight applied to a {-1, +1} input
  need none. A layer instantiates ``min(M, T)`` multipliers (with full unrolling constant
  weights 0 / +-2^k are optimised away; a layer with ``T = 0`` needs none).
* A multiplier of operand widths a x b (an unsigned operand counts one bit more: the DSP ports
  are signed) uses ``ceil(A/27) * ceil(B/18)`` DSP48E2 (UltraScale+; ``25 x 18`` DSP48E1 on
  Zynq-7000), A >= B the two widths (the cheaper of the two port assignments). Small products
  map to LUTs instead: when ``a * b <= FABRIC_MULT_MAX_PRODUCT`` = 55 (the LUTs a DSP counts
  for in LUT + 55 x DSP, so the choice is the cheaper side and one more bit never costs a
  jump); such a multiplier costs ``a * b`` LUTs (one per partial-product bit) and no DSP. The
  C++ pins each multiply to the side counted here (``qfx::mul``: ``BIND_OP impl=fabric`` or
  ``impl=dsp`` on its product), so synthesis does not choose otherwise.
* K-hot constants (``params["weight_digits"]`` with ``attrs["weight_khot"] = K``, likewise
  ``scale_digits``) are K shifts and at most K - 1 adds: **0 DSP**; their adds are in the adder
  count below. When the layer is folded (``ii > 1``: digits come from a ROM, not constants),
  each lane also needs K barrel shifters of ``w * ceil(log2(b) / 2)`` LUTs (4:1 muxes in LUT6;
  w the product width, b the weight width).
* A fixed-point weight on a {-1, +1} input is a conditional negation: ``b`` LUTs per lane.
* Binary layers: XNOR + popcount, about 2 LUTs per XNOR input bit in flight (the XNOR merges
  into the first compressor level; the compressor/adder tree is the second LUT).

Adders, comparisons, casts (LUTs; one LUT per bit of an adder on the carry chain):

* Adders: ``ceil(additions / ii)`` adders of the accumulator width, ``additions`` from
  ``qfx.ir.cost`` (the accumulation, bias/shift, K-hot digit terms, residual adds, pooling
  sums), ``ii`` the cycles each parallel unit is busy per inference (below). A dense / conv /
  BatchNorm layer whose constants sit in a ROM (folded) instead has one adder per parallel
  multiplier (K per lane for K-hot digits): the lanes add whatever the ROM holds, zero weights
  and zero output channels included (:func:`qfx.backends.hls.rules.mac_adders`).
* Comparisons (ReLU, HardTanh, max pool): compare + select, ``2 * w`` LUTs each, w the input
  width; thresholds and thermometer bits: ``w`` LUTs each.
* The output cast of a node: ``w_out`` LUTs per lane for a rounding mode other than TRN that
  drops bits (the rounding increment) plus ``w_out`` for a saturating overflow mode; nothing
  when the output type holds every value of the accumulator (the cast is wiring).
* Control (FSM, loop counters, address generation): ``LAYER_CONTROL_LUT`` /
  ``LAYER_CONTROL_FF`` per layer.

Registers: every parallel adder / LUT multiplier / lane output is registered once (its width in
FF); DSP multipliers register inside the DSP48 (no FF).

Memories (weights, biases, BatchNorm scale/shift, activations):

* Constants of a layer whose every multiplication has its own multiplier and ``ii == 1`` become
  logic (no memory). Otherwise they sit in a ROM partitioned into one bank per parallel reader
  (the writer's ARRAY_PARTITION by the unroll factor): ``min(n, M)`` banks for weights.
* Each activation array (one per node output; a flatten aliases its input) is partitioned into
  ``min(n, max(writer lanes, reader lanes))`` banks; reader lanes are the consumer's
  multipliers (conv: all M read the input), its reduction lanes (dense), or its lanes.
* A bank of depth d and width w: ``d <= 2`` -> registers (``d * w`` FF); ``d * w <
  BRAM_MIN_BITS`` (1,024 bits) -> LUTRAM/LUT-ROM, ``ceil(d / 64) * w`` LUTs; else BRAM18K
  (18 Kib, the best of the 16Kx1, 8Kx2, 4Kx4, 2Kx9, 1Kx18, 512x36 aspect ratios). A ROM of
  constants is never registers: a one-word bank is a constant (nothing), a small one a LUT-ROM.

Latency (cycles; the ``io="parallel"`` architecture runs the layers one after another in IR
order, each loop nest pipelined at II = 1 as the writer's pragmas request):

* dense: ``ceil(P/out) * (ceil(K/red) + D)``; conv2d: ``C_out * ceil(P/out) * (ceil(K/red) +
  D)``; BatchNorm: ``C * (ceil(S/u) + D)``; element-wise: ``ceil(n/u) + D``; flatten: 0.
  ``D`` is the pipeline depth: the multiplier's latency (DSP 3, +1 when cascaded; LUT 2;
  shift-add ``1 + ceil(log2 K)``; XNOR 1) + ``ceil(log2 K)`` adder-tree levels + 2 (accumulate,
  output cast); element-wise layers 2 (+ ``ceil(log2 area)`` for pooling).
* ``ii`` of a layer is the number of cycles each parallel unit is busy per inference (the
  effective reuse: the latency without pipeline fill).
* The AXI-Stream wrapper reads one input word per cycle, copies the outputs and writes one
  output word per cycle: ``n_in + 2 * n_out`` cycles plus 6 of pipeline fill, and about
  ``AXIS_LUT`` LUTs / ``AXIS_FF`` FF of stream/AXI-Lite logic.
* The design's interval (cycles between inferences) equals its latency (no DATAFLOW); cycles
  become microseconds at the board (or given) clock.

Streaming architecture (``io="stream"``, the writer's DATAFLOW pipeline, qfx_stream.h):

* Every layer is a process that works pixel by pixel (``P`` output pixels; a 1-D tensor is one
  pixel). A convolution folds the products of ONE output pixel: ``fold(K, C_out / groups,
  reuse)`` per group, busy ``P * groups * ceil(C_out/g / out) * ceil(K / red)`` cycles; element-
  wise layers unroll the channels of a pixel (``u = min(C, ceil(C / reuse))``), busy
  ``P * ceil(C / u)``; pooling likewise per output pixel; dense is the parallel model (one
  pixel). A layer's constants are logic when one pixel takes one cycle, else a ROM.
* Memories: no activation arrays. Each edge's FIFO holds 2 pixels (registers), except the FIFOs
  of an edge read by several layers, which hold the whole tensor (``P`` pixels of ``C`` values,
  the writer's depth that rules out a DATAFLOW deadlock); the window layers keep a line buffer
  of ``((k_h - 1) * dil_h + 1) * W_in * C_in`` values (one bank per channel); flatten buffers
  its tensor.
* Timing: the processes overlap. A layer's first output comes ``fill`` cycles after its first
  input (window layers: the input rows that complete the first output row, one pixel per cycle,
  plus one pixel's compute; dense and flatten: all their work; others: one pixel), and its last
  output ``max(last input + one pixel's work, first input + busy cycles)``. The latency is the
  last output word's time (inputs arrive one word per cycle); the interval is the busiest
  process (or the input/output words).

Not included: the AXI DMA, interconnect and processing-system logic of the block design.

Example:
    >>> import qfx, torch
    >>> from qfx.nn import QInput, QLinear
    >>> net = torch.nn.Sequential(QInput(8), QLinear(16, 8))
    >>> with qfx.calibration(net):
    ...     _ = net(torch.randn(64, 16))
    >>> g = qfx.freeze(net, torch.randn(1, 16))
    >>> r1 = estimate_resources(g, reuse=1, board="ultra96")
    >>> r8 = estimate_resources(g, reuse=8, board="ultra96")
    >>> r8.total.dsp < r1.total.dsp, r8.latency_cycles > r1.latency_cycles, r1.fits
    (True, True, True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qfx.backends.hls.boards import Board, load_board
from qfx.backends.hls.budget import ResourceBudget, ResourceEstimate
from qfx.backends.hls.costmodel import (
    BRAM_MIN_BITS,
    FABRIC_MULT_MAX_PRODUCT,
    LayerCost,
    Mem,
    Shape,
    cast_luts,
    ceil_div,
    dsp_per_multiply,
    dsp_ports,
)
from qfx.backends.hls.layout import edge_pixels
from qfx.backends.hls.plan import Schedule, schedule
from qfx.backends.hls.reuse import LayerReuse, ReuseSpec, normalize_reuse, resolve_reuse
from qfx.ir.cost import NodeCost, binary_edges, cost_report
from qfx.ir.graph import Graph, Node

__all__ = [
    "AXIS_FF",
    "AXIS_LUT",
    "BRAM_MIN_BITS",
    "ESTIMATE_NOTE",
    "EstimateModel",
    "LAYER_CONTROL_FF",
    "LAYER_CONTROL_LUT",
    "FABRIC_MULT_MAX_PRODUCT",
    "LayerEstimate",
    "ResourceReport",
    "dsp_per_multiply",
    "estimate_resources",
]

#: Control logic (FSM, loop counters, address generation) per layer.
LAYER_CONTROL_LUT = 100
LAYER_CONTROL_FF = 80
#: AXI-Stream in/out and AXI-Lite control logic of the ``<project>_axis`` wrapper.
AXIS_LUT = 300
AXIS_FF = 400
#: The label every report carries.
ESTIMATE_NOTE = ("estimate from qfx's analytical model of the generated HLS code "
                 "(qfx.backends.hls.estimate), not a synthesis result")

_AXIS_ROW = "(axi-stream i/o)"


# ====================================================================== results
@dataclass(frozen=True)
class LayerEstimate:
    """The estimate of one layer (IR node) or of the AXI-Stream wrapper (``op == "axis"``).

    ``n_mults``: nominal multiplications (MACs / XNOR taps) per inference; ``parallel``: the
    parallel units the writer's folding gives (multipliers or lanes); ``multipliers``: of those,
    true multipliers (DSP- or LUT-mapped; 0 for K-hot, binary and multiplier-free layers);
    ``mult_impl``: ``"dsp"``, ``"lut"``, ``"shift-add"`` (K-hot), ``"xnor"``, ``"sign"`` or
    ``"-"``; ``ii``: cycles each unit is busy per inference; ``estimate``: LUT/FF/DSP/BRAM18K
    and the latency in cycles; ``reuse``: the layer's own reuse factor (``None`` for the
    AXI-Stream wrapper).

    Example:
        >>> row = LayerEstimate("fc", "dense", ("ap_fixed<8,3>",), "ap_fixed<8,3>",
        ...                     "ap_fixed<8,1>", "ap_fixed<20,6>", n_mults=64, parallel=16,
        ...                     multipliers=16, mult_impl="dsp", dsp_per_mult=1, ii=4,
        ...                     estimate=ResourceEstimate(dsp=16, latency_cycles=12))
        >>> row.dsp, row.latency_cycles, row.input_type
        (16, 12, 'ap_fixed<8,3>')
    """

    node: str
    op: str
    input_types: tuple[str, ...]
    output_type: str
    weight_type: str | None
    acc_type: str | None
    n_mults: int
    parallel: int
    multipliers: int
    mult_impl: str
    dsp_per_mult: int
    ii: int
    estimate: ResourceEstimate
    notes: tuple[str, ...] = ()
    reuse: int | None = None

    @property
    def input_type(self) -> str:
        return ", ".join(self.input_types)

    @property
    def lut(self) -> int:
        return self.estimate.lut

    @property
    def ff(self) -> int:
        return self.estimate.ff

    @property
    def dsp(self) -> int:
        return self.estimate.dsp

    @property
    def bram18k(self) -> int:
        return self.estimate.bram18k

    @property
    def latency_cycles(self) -> int:
        return int(self.estimate.latency_cycles or 0)

    def as_dict(self, clock_mhz: float | None = None) -> dict[str, Any]:
        """Plain data for JSON; resource numbers under ``"estimate"``."""
        est: dict[str, Any] = {k.lower(): v for k, v in self.estimate.as_dict().items()}
        est["latency_cycles"] = self.latency_cycles
        est["latency_us"] = (None if clock_mhz is None
                             else self.estimate.latency_us(clock_mhz))
        return {
            "node": self.node, "op": self.op, "input_types": list(self.input_types),
            "output_type": self.output_type, "weight_type": self.weight_type,
            "acc_type": self.acc_type, "reuse": self.reuse, "n_mults": self.n_mults,
            "parallel": self.parallel, "multipliers": self.multipliers, "mult_impl": self.mult_impl,
            "dsp_per_mult": self.dsp_per_mult, "ii": self.ii, "notes": list(self.notes),
            "estimate": est,
        }


@dataclass(frozen=True)
class ResourceReport:
    """Per-layer estimates of a graph's HLS design and their total against a board's budget.

    All numbers are estimates (see the module docstring for the model). ``board`` may be
    ``None`` (no budget; utilisation and over-budget are then empty); ``clock_mhz`` defaults to
    the board's clock. ``reuse`` is the factor asked for: an int, or a
    :class:`~qfx.backends.hls.reuse.LayerReuse` (``{node: reuse, "*": default}``); each row
    carries its own (``layer_reuse``).

    Example:
        >>> rep = ResourceReport(layers=(), reuse=1, board=load_board("ultra96"),
        ...                      clock_mhz=200.0, total=ResourceEstimate(dsp=412,
        ...                      latency_cycles=1000))
        >>> rep.over_budget(), rep.latency_us
        (['DSP 412 > 360 on ultra96v2 (estimate)'], 5.0)
    """

    layers: tuple[LayerEstimate, ...]
    reuse: int | LayerReuse
    board: Board | None
    clock_mhz: float | None
    total: ResourceEstimate
    model: str = "graph"
    io: str = "parallel"
    notes: tuple[str, ...] = field(default_factory=tuple)
    interval: int | None = None

    # ------------------------------------------------------------------ latency
    @property
    def latency_cycles(self) -> int:
        """Estimated cycles from the first input word to the last output word."""
        return int(self.total.latency_cycles or 0)

    @property
    def interval_cycles(self) -> int:
        """Estimated cycles between two inferences: the latency for ``io="parallel"`` (layers
        run one by one), the busiest process for ``io="stream"`` (DATAFLOW)."""
        return self.latency_cycles if self.interval is None else int(self.interval)

    @property
    def latency_us(self) -> float | None:
        """Estimated latency in microseconds at ``clock_mhz`` (None without a clock)."""
        return None if self.clock_mhz is None else self.total.latency_us(self.clock_mhz)

    @property
    def throughput_per_s(self) -> float | None:
        """Estimated inferences per second at ``clock_mhz`` (None without a clock)."""
        if self.clock_mhz is None or self.interval_cycles == 0:
            return None
        return self.clock_mhz * 1e6 / self.interval_cycles

    # ------------------------------------------------------------------ budget
    @property
    def budget(self) -> ResourceBudget | None:
        return None if self.board is None else ResourceBudget.from_board(self.board)

    def utilisation(self) -> dict[str, float]:
        """Each estimated resource as a fraction of the board's (empty without a board)."""
        return {} if self.board is None else self.total.utilisation(self.board)

    def over_budget(self) -> list[str]:
        """One message per resource the estimate exceeds, e.g.
        ``"DSP 412 > 360 on ultra96v2 (estimate)"`` (empty without a board)."""
        if self.board is None:
            return []
        return [f"{m} (estimate)" for m in self.total.over_budget(self.board)]

    @property
    def fits(self) -> bool:
        """True when no estimated resource exceeds the board's budget."""
        return not self.over_budget()

    @property
    def layer_reuse(self) -> dict[str, int]:
        """Each layer's reuse factor (the AXI-Stream wrapper row excluded)."""
        return {r.node: r.reuse for r in self.layers if r.reuse is not None}

    def layer(self, name: str) -> LayerEstimate:
        for row in self.layers:
            if row.node == name:
                return row
        raise KeyError(f"no layer named {name!r} in the estimate; layers: "
                       f"{', '.join(r.node for r in self.layers)}")

    # ------------------------------------------------------------------ output
    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``report.json``: every resource number under an ``estimate`` key."""
        budget = self.budget
        util = self.utilisation()
        total: dict[str, Any] = {k.lower(): v for k, v in self.total.as_dict().items()}
        total.update(latency_cycles=self.latency_cycles, latency_us=self.latency_us,
                     interval_cycles=self.interval_cycles,
                     throughput_per_s=self.throughput_per_s)
        return {
            "kind": "estimate",
            "note": ESTIMATE_NOTE,
            "model": self.model,
            "io": self.io,
            "reuse": self.reuse,
            "reuse_per_layer": self.layer_reuse,
            "board": None if self.board is None else {
                "name": self.board.name, "part": self.board.part,
                "family": self.board.family, "default_clock_mhz": self.board.clock_mhz},
            "clock_mhz": self.clock_mhz,
            "budget": None if budget is None else {
                k.lower(): v for k, v in budget.as_dict().items()},
            "estimate": total,
            "utilisation_estimate": {
                k.lower(): (None if math.isinf(v) else v) for k, v in util.items()},
            "over_budget": self.over_budget(),
            "fits_estimate": self.fits,
            "layers": [r.as_dict(self.clock_mhz) for r in self.layers],
            "model_notes": list(self.notes),
        }

    def summary(self) -> str:
        """A plain-text table of the per-layer estimate and the totals vs the budget."""
        head = (f"{'layer':22s} {'op':14s} {'reuse':>6s} {'mults':>9s} {'par.':>5s} {'II':>7s} "
                f"{'impl':9s} {'DSP':>6s} {'LUT':>8s} {'FF':>8s} {'BRAM18K':>7s} "
                f"{'cycles':>9s}")
        lines = [f"Resource ESTIMATE ({ESTIMATE_NOTE})", head, "-" * len(head)]
        for r in self.layers:
            reuse = "-" if r.reuse is None else str(r.reuse)
            lines.append(f"{r.node[:22]:22s} {r.op[:14]:14s} {reuse:>6s} {r.n_mults:9d} "
                         f"{r.parallel:5d} {r.ii:7d} {r.mult_impl[:9]:9s} {r.dsp:6d} "
                         f"{r.lut:8d} {r.ff:8d} "
                         f"{r.bram18k:7d} {r.latency_cycles:9d}")
        lines.append("-" * len(head))
        t = self.total
        lines.append(f"{'total (estimate)':22s} {'':14s} {'':6s} {'':9s} {'':5s} {'':7s} {'':9s} "
                     f"{t.dsp:6d} {t.lut:8d} {t.ff:8d} {t.bram18k:7d} {self.latency_cycles:9d}")
        if self.clock_mhz is not None:
            lines.append(f"latency (estimate): {self.latency_cycles} cycles = "
                         f"{self.latency_us:.3f} us at {self.clock_mhz:g} MHz, "
                         f"{self.throughput_per_s:,.0f} inferences/s")
        if self.board is not None:
            util = self.utilisation()
            budget = self.budget.as_dict() if self.budget else {}
            parts = [f"{k} {v:,}/{budget[k]:,} ({_pct(util[k])})"
                     for k, v in t.as_dict().items() if budget.get(k) or v]
            lines.append(f"estimated use of {self.board.name} ({self.board.part}): "
                         + ", ".join(parts))
            over = self.over_budget()
            lines.append("OVER BUDGET: " + "; ".join(over) if over
                         else "fits the board (estimate)")
        return "\n".join(lines)


def _pct(x: float) -> str:
    return "inf" if math.isinf(x) else f"{100 * x:.1f}%"




# ====================================================================== the estimate
def estimate_resources(graph: Graph, *, reuse: ReuseSpec = 1, board: Board | str | None = None,
                       clock_mhz: float | None = None, io: str = "parallel") -> ResourceReport:
    """Estimate LUT/FF/DSP/BRAM18K and latency of ``graph``'s HLS design at ``reuse``.

    Args:
        graph: the frozen integer graph.
        reuse: the writer's reuse factor (multiplications per multiplier, >= 1): an int for
            every layer, or a mapping ``{node_name: reuse}`` with an optional ``"*"`` default
            (as ``export_firmware``; unknown node names are refused).
        board: a board name/alias/YAML path or :class:`Board` for the budget (``None``: no
            budget check), which also picks the DSP model (DSP48E1 on Zynq-7000).
        clock_mhz: clock for the microsecond figures (``None``: the board's default clock).
        io: the architecture the writer generates: ``"parallel"`` or ``"stream"`` (DATAFLOW;
            see the module docstring).

    Returns:
        A :class:`ResourceReport` (per-layer rows plus the AXI-Stream wrapper, totals, budget).

    Example:
        >>> estimate_resources(Graph(), board="ultra96").total.dsp
        0
    """
    return EstimateModel(graph, board=board, clock_mhz=clock_mhz, io=io).report(reuse)


class EstimateModel:
    """The estimate of one graph on one board and architecture, for any reuse: what does not
    depend on the reuse (the ops' arithmetic costs, the binary edges, the DSP ports, the
    rules, FIFOs and line buffers) is computed once, so that a search over per-layer reuse
    factors (:mod:`qfx.backends.hls.autofold`) evaluates single layers with the very model
    :func:`estimate_resources` sums (:meth:`row`, :meth:`array`, :meth:`axis_row`).

    Example:
        >>> m = EstimateModel(Graph(), board="ultra96")
        >>> m.report(1).total.dsp, m.stream
        (0, False)
    """

    def __init__(self, graph: Graph, *, board: Board | str | None = None,
                 clock_mhz: float | None = None, io: str = "parallel") -> None:
        if io not in ("parallel", "stream"):
            raise ValueError(f"io must be 'parallel' or 'stream', got {io!r}")
        self.graph, self.io = graph, io
        self.stream = io == "stream"
        self.board = None if board is None else load_board(board)
        clock = (clock_mhz if clock_mhz is not None
                 else (None if self.board is None else self.board.clock_mhz))
        if clock is not None and (isinstance(clock, bool) or not isinstance(clock, (int, float))
                                  or not math.isfinite(clock) or not 0 < clock <= 1000):
            raise ValueError(f"clock_mhz must be a number in (0, 1000], got {clock!r}")
        self.clock_mhz = None if clock is None else float(clock)
        self.ports = dsp_ports(self.board)
        self.schedule = schedule(graph, 1, io)  # rules, aliases, FIFOs, line buffers
        for node in graph.nodes:
            if node.name not in self.schedule.rules:
                raise ValueError(f"node {node.name!r}: no resource model for op {node.op!r}")
        self.costs = {c.name: c for c in cost_report(graph).nodes}
        self.binary = binary_edges(graph)
        self.nodes = {n.name: n for n in graph.nodes}

    def shape(self, name: str, reuse: int) -> Shape:
        """The writer's folding of node ``name`` at ``reuse`` (its rule's (stream) shape)."""
        node = self.nodes[name]
        rl = self.schedule.rules[name]
        return (rl.stream_shape if self.stream else rl.shape)(self.graph, node, reuse)

    def row(self, name: str, reuse: int, readers: Mapping[str, int] | None = None,
            shape: Shape | None = None) -> LayerEstimate:
        """The estimate of node ``name`` at ``reuse``; ``readers``: the lanes that read each
        (base) activation array (``io="parallel"``; none: the node's own write lanes)."""
        sh = self.shape(name, reuse) if shape is None else shape
        row = _layer(self.schedule, self.nodes[name], sh, self.costs[name], self.binary,
                     self.ports, readers or {})
        return dataclasses.replace(row, reuse=reuse)

    def array(self, edge: str, banks: int) -> ResourceEstimate:
        """An activation array (``io="parallel"``) of ``edge`` split into ``banks`` banks."""
        e = self.graph.edges[edge]
        mem = Mem()
        mem.add(int(math.prod(e.shape)) if e.shape else 1, e.type.width, banks)
        return ResourceEstimate(lut=mem.lut, ff=mem.ff, bram18k=mem.bram18k)

    def read_lanes(self, shapes: Mapping[str, Shape]) -> dict[str, int]:
        """The lanes that read each (base) activation array, from every node's folding."""
        readers: dict[str, int] = {}  # alias edges (a flatten's output) share their input's
        for node in self.graph.nodes:
            for edge, lanes in shapes[node.name].read_lanes.items():
                base = self.schedule.alias.get(edge, edge)
                readers[base] = max(readers.get(base, 1), lanes)
        return readers

    def axis_row(self, readers: Mapping[str, int] | None = None) -> LayerEstimate:
        """The AXI-Stream wrapper's row."""
        return _axis_row(self.graph, readers or {}, self.stream)

    def stream_timing(self, shapes: Mapping[str, Shape],
                      rows: Mapping[str, LayerEstimate]) -> tuple[int, int]:
        """(latency, interval) in cycles of the DATAFLOW pipeline."""
        return _stream_timing(self.schedule, shapes, rows)

    def report(self, reuse: ReuseSpec) -> ResourceReport:
        """The full estimate at ``reuse`` (see :func:`estimate_resources`)."""
        graph, stream = self.graph, self.stream
        reuse = normalize_reuse(reuse)
        per_node = resolve_reuse(graph, reuse)  # unknown node names are refused here
        shapes = {n.name: self.shape(n.name, per_node[n.name]) for n in graph.nodes}
        readers = self.read_lanes(shapes)
        rows = [self.row(n.name, per_node[n.name], readers, shapes[n.name])
                for n in graph.nodes]
        rows.append(self.axis_row(readers))
        total = ResourceEstimate(latency_cycles=0)
        for r in rows:
            total = total + r.estimate
        interval = None
        if stream:
            latency, interval = self.stream_timing(shapes, {r.node: r for r in rows})
            total = dataclasses.replace(total, latency_cycles=latency)
        ports = self.ports
        timing = ("layers run one after another (io=parallel, no DATAFLOW); interval = latency"
                  if not stream else
                  "layers overlap (io=stream, DATAFLOW): latency from the first input word to "
                  "the last output word, interval = the busiest process; per-layer cycles are "
                  "each process's busy cycles")
        return ResourceReport(
            layers=tuple(rows), reuse=reuse, board=self.board, clock_mhz=self.clock_mhz,
            total=total, model=str(graph.meta.get("model", "graph")), io=self.io,
            interval=interval,
            notes=(ESTIMATE_NOTE,
                   f"DSP model: {'DSP48E1' if ports[0] == 25 else 'DSP48E2'} "
                   f"{ports[0]}x{ports[1]} multipliers; products of at most "
                   f"{FABRIC_MULT_MAX_PRODUCT} partial-product bits (a x b) map to LUTs, "
                   "pinned in the C++ (BIND_OP)",
                   "K-hot constants are shift-adds: 0 DSP", timing,
                   "not included: AXI DMA, interconnect and processing-system logic"),
        )


def _stream_timing(sch: Schedule, shapes: Mapping[str, Shape],
                   rows: Mapping[str, LayerEstimate]) -> tuple[int, int]:
    """(latency, interval) in cycles of the DATAFLOW pipeline (see the module docstring)."""
    graph = sch.graph
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    words = 0
    for name in graph.inputs:
        chan, pixels = edge_pixels(graph.edges[name].shape)
        first[name] = words + chan
        words += chan * pixels
        last[name] = words
    in_words = words
    busiest = 0
    for node in graph.nodes:
        sh = shapes[node.name]
        busy = rows[node.name].latency_cycles
        busiest = max(busiest, busy)
        per_pixel = ceil_div(busy, max(sh.pixels, 1))
        f_in = max(first[i] for i in node.inputs)
        l_in = max(last[i] for i in node.inputs)
        lb = sch.line_buffers.get(node.name)
        if lb is not None:  # the input rows that complete the first output row
            fill = lb.first_rows * lb.width + per_pixel
        elif sch.rules[node.name].whole_tensor:
            fill = busy
        else:
            fill = per_pixel
        first[node.output] = f_in + fill
        last[node.output] = max(l_in + per_pixel, f_in + busy)
    out_words = sum(int(math.prod(graph.edges[o].shape)) for o in graph.outputs)
    latency = max((last[o] for o in graph.outputs), default=in_words) + out_words
    return latency, max(busiest, in_words, out_words)


def _layer(sch: Schedule, node: Node, sh: Shape, cost: NodeCost, binary: set[str],
           ports: tuple[int, int], readers: Mapping[str, int]) -> LayerEstimate:
    """One row of the estimate: the op's own model (its rule's ``resources``), then what every
    layer has: its output cast, output registers, control, and its output array (streamed: its
    FIFOs and, for a window layer, its line buffer)."""
    graph, rl = sch.graph, sch.rules[node.name]
    r = LayerCost(graph, node, sh, cost, binary, ports, sch.stream,
                  0 if rl.aliases else max(sh.ii, 1))
    rl.resources(r)
    out_e = graph.edges[node.output]
    out_t = out_e.type
    if rl.casts(node):
        src_t = r.acc_t if r.acc_t is not None else r.x_t
        r.lut += sh.write_lanes * cast_luts(src_t, out_t)
    if not rl.aliases or sch.stream:
        r.ff += sh.write_lanes * out_t.width
        r.lut += LAYER_CONTROL_LUT
        r.ff += LAYER_CONTROL_FF
    if sch.route is None:
        if not rl.aliases:
            n_out = int(math.prod(out_e.shape)) if out_e.shape else 1
            r.mem.add(n_out, out_t.width, max(sh.write_lanes, readers.get(node.output, 1)))
    else:
        chan = edge_pixels(out_e.shape)[0]
        for fifo in sch.route.of_edge(node.output):  # one bank each
            r.mem.add(fifo.depth, chan * out_t.width, 1)
        lb = sch.line_buffers.get(node.name)
        if lb is not None:
            r.mem.add(lb.rows * lb.width * lb.chan, r.x_t.width, lb.chan)
            r.notes.append(f"line buffer: {lb.rows} rows x {lb.width} x {lb.chan}")
    est = ResourceEstimate(lut=r.lut + r.mem.lut, ff=r.ff + r.mem.ff, dsp=r.dsp,
                           bram18k=r.mem.bram18k, latency_cycles=sh.cycles(r.depth))
    n_mults = cost.macs if rl.counts_macs else cost.mult_ops
    return LayerEstimate(
        node=node.name, op=node.op, input_types=tuple(graph.edges[i].type.cpp()
                                                      for i in node.inputs),
        output_type=out_t.cpp(), weight_type=r.weight_t,
        acc_type=None if r.acc_t is None else r.acc_t.cpp(), n_mults=int(n_mults),
        parallel=int(sh.parallel), multipliers=int(r.multipliers), mult_impl=r.impl,
        dsp_per_mult=int(r.dpm), ii=int(r.ii), estimate=est, notes=tuple(r.notes))


def _axis_row(graph: Graph, readers: Mapping[str, int], stream: bool = False) -> LayerEstimate:
    """The AXI-Stream wrapper: stream in, output copy, stream out, port arrays (``stream``:
    words to pixels and back inside the DATAFLOW region, no port arrays)."""
    mem = Mem()
    n_in = n_out = 0
    for name in graph.inputs:
        e = graph.edges[name]
        n = int(math.prod(e.shape)) if e.shape else 1
        n_in += n
        if not stream:
            mem.add(n, e.type.width, readers.get(name, 1))
    for name in graph.outputs:
        e = graph.edges[name]
        n = int(math.prod(e.shape)) if e.shape else 1
        n_out += n
        if not stream:
            mem.add(n, e.type.width, 1)
    cycles = n_in + (1 if stream else 2) * n_out + 6
    est = ResourceEstimate(lut=AXIS_LUT + mem.lut, ff=AXIS_FF + mem.ff, bram18k=mem.bram18k,
                           latency_cycles=cycles)
    types = tuple(graph.edges[i].type.cpp() for i in graph.inputs)
    out_types = ", ".join(graph.edges[o].type.cpp() for o in graph.outputs)
    return LayerEstimate(
        node=_AXIS_ROW, op="axis", input_types=types, output_type=out_types, weight_type=None,
        acc_type=None, n_mults=0, parallel=1, multipliers=0, mult_impl="-", dsp_per_mult=0,
        ii=n_in + (1 if stream else 2) * n_out, estimate=est,
        notes=(f"{n_in} input words in, {n_out} outputs "
               f"{'streamed out' if stream else 'copied and streamed out'}, AXI-Lite control",))

