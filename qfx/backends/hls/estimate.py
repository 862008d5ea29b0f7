"""Analytical resource and latency **estimate** of the HLS design that ``export_firmware`` writes.

Everything here is an estimate from a documented model of the generated C++ (the folding and
pragmas of :mod:`qfx.backends.hls.writer`), never a synthesis result: only Vitis HLS / Vivado
give real numbers. The model is deliberately simple, monotone in the reuse factor and
explainable line by line; every report built from it says "estimate".

Parallelism (the writer's folding, reused verbatim from ``writer._fold`` / ``writer._unroll``):

* dense / conv2d (and binary_dense / binary_conv2d): with reduction length K per output (n_in,
  or C/groups*KH*KW) and P outputs in the unrollable loop (n_out for dense, OH*OW for conv: the
  output-channel loop of a convolution stays sequential), the writer allows
  ``M = min(ceil(K*P / reuse), 4096)`` multipliers and unrolls ``red = min(K, M)`` along the
  reduction and ``out = min(P, M // red, 4096 // red)`` along the outputs: ``red * out <= M``
  parallel multipliers, busy ``ceil(P/out) * ceil(K/red)`` cycles (times C_out for a conv).
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
  map to LUTs instead: when both operands have at most ``LUT_MULT_MAX_BITS`` = 4 bits, or one
  of them is 1 bit (binary); such a multiplier costs ``a * b`` LUTs (one per partial-product
  bit) and no DSP.
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
  sums), ``ii`` the cycles each parallel unit is busy per inference (below).
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
  (18 Kib, the best of the 16Kx1, 8Kx2, 4Kx4, 2Kx9, 1Kx18, 512x36 aspect ratios).

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
  pixel). A convolution folds the products of ONE output pixel: ``_fold(K, C_out / groups,
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
from qfx.backends.hls.layout import edge_pixels
from qfx.backends.hls.writer import (
    _WINDOW_OPS,
    MAX_UNROLL,
    LayerReuse,
    ReuseSpec,
    _fold,
    _unroll,
    normalize_reuse,
    resolve_reuse,
)
from qfx.fixed.fixed_type import FixedType
from qfx.ir.cost import NodeCost, binary_edges, cost_report
from qfx.ir.graph import Graph, Node, pair

__all__ = [
    "AXIS_FF",
    "AXIS_LUT",
    "BRAM_MIN_BITS",
    "ESTIMATE_NOTE",
    "LAYER_CONTROL_FF",
    "LAYER_CONTROL_LUT",
    "LUT_MULT_MAX_BITS",
    "LayerEstimate",
    "ResourceReport",
    "dsp_per_multiply",
    "estimate_resources",
]

#: Both operands at most this wide (or one of them 1 bit): the multiply maps to LUTs.
LUT_MULT_MAX_BITS = 4
#: A memory bank smaller than this (bits) is LUTRAM / LUT-ROM, else BRAM18K.
BRAM_MIN_BITS = 1024
#: Banks at most this deep are registers.
REG_MAX_DEPTH = 2
#: Control logic (FSM, loop counters, address generation) per layer.
LAYER_CONTROL_LUT = 100
LAYER_CONTROL_FF = 80
#: AXI-Stream in/out and AXI-Lite control logic of the ``<project>_axis`` wrapper.
AXIS_LUT = 300
AXIS_FF = 400
#: The label every report carries.
ESTIMATE_NOTE = ("estimate from qfx's analytical model of the generated HLS code "
                 "(qfx.backends.hls.estimate), not a synthesis result")

_BRAM18K_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
_AXIS_ROW = "(axi-stream i/o)"
_NO_CAST_OPS = ("maxpool2d", "flatten", "threshold", "thermometer")


# ====================================================================== small models
def _clog2(n: int) -> int:
    return max(0, (int(n) - 1).bit_length())


def _ceil(a: int, b: int) -> int:
    return -(-int(a) // int(b))


def _dsp_ports(board: Board | None) -> tuple[int, int]:
    """(A, B) widths of the DSP multiplier: DSP48E1 25x18 on Zynq-7000, else DSP48E2 27x18."""
    if board is not None and board.ps == "processing_system7":
        return 25, 18
    return 27, 18


def dsp_per_multiply(a: FixedType | int, b: FixedType | int, ports: tuple[int, int] = (27, 18)
                     ) -> int:
    """DSP slices of one multiplier of operands ``a`` x ``b`` (FixedTypes or signed widths);
    0 when the product maps to LUTs (both operands <= ``LUT_MULT_MAX_BITS`` bits, or a 1-bit
    operand).

    Example:
        >>> dsp_per_multiply(FixedType(8, 3), FixedType(8, 1))
        1
        >>> dsp_per_multiply(FixedType(30, 3), FixedType(30, 1))
        4
        >>> dsp_per_multiply(FixedType(4, 1), FixedType(3, 1))
        0
    """
    wa, wb = _raw_width(a), _raw_width(b)
    if max(wa, wb) <= LUT_MULT_MAX_BITS or min(wa, wb) == 1:
        return 0
    sa, sb = _signed_width(a), _signed_width(b)
    pa, pb = ports
    hi, lo = max(sa, sb), min(sa, sb)
    return min(_ceil(hi, pa) * _ceil(lo, pb), _ceil(lo, pa) * _ceil(hi, pb))


def _raw_width(t: FixedType | int) -> int:
    return t.width if isinstance(t, FixedType) else int(t)


def _signed_width(t: FixedType | int) -> int:
    if isinstance(t, FixedType):
        return t.width + (0 if t.signed else 1)
    return int(t)


def _bram18k(depth: int, width: int) -> int:
    return min(_ceil(depth, d) * _ceil(width, w) for d, w in _BRAM18K_SHAPES)


@dataclass
class _Mem:
    lut: int = 0
    ff: int = 0
    bram18k: int = 0

    def add(self, n: int, width: int, banks: int) -> None:
        """A memory of ``n`` words of ``width`` bits split into ``banks`` banks."""
        if n <= 0 or width <= 0:
            return
        banks = max(1, min(int(banks), int(n)))
        depth = _ceil(n, banks)
        if depth <= REG_MAX_DEPTH:
            self.ff += n * width
        elif depth * width < BRAM_MIN_BITS:
            self.lut += banks * _ceil(depth, 64) * width
        else:
            self.bram18k += banks * _bram18k(depth, width)


def _cast_luts(src: FixedType, t: FixedType) -> int:
    """LUTs of one cast from ``src`` to ``t``: rounding increment and saturation logic (none
    when ``t`` holds every value of ``src``: the cast is wiring)."""
    if t.contains(src):
        return 0
    rounds = t.rounding != "TRN" and t.frac_bits < src.frac_bits
    return t.width * (int(rounds) + int(t.overflow != "WRAP"))


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
    :class:`~qfx.backends.hls.writer.LayerReuse` (``{node: reuse, "*": default}``); each row
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
@dataclass
class _Shape:
    """What the folding gives one node: ``parallel`` units; a pipelined loop of ``inner``
    iterations entered ``outer`` times (latency ``outer * (inner + depth)``, plus ``extra``
    cycles: a window layer reading its input rows); the lanes that write its output array and
    read each input array. ``const_ii``: cycles per pass over the layer's constants (``None``:
    ``ii``; one output pixel in the streaming architecture); ``pixels``: output pixels
    (streaming)."""

    parallel: int = 1
    outer: int = 1
    inner: int = 0
    write_lanes: int = 1
    read_lanes: dict[str, int] = field(default_factory=dict)
    const_ii: int | None = None
    pixels: int = 1
    extra: int = 0

    @property
    def ii(self) -> int:
        """Cycles each parallel unit is busy per inference."""
        return self.outer * self.inner

    def cycles(self, depth: int) -> int:
        return (self.outer * (self.inner + depth) if self.inner else 0) + self.extra


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
    if io not in ("parallel", "stream"):
        raise ValueError(f"io must be 'parallel' or 'stream', got {io!r}")
    stream = io == "stream"
    reuse = normalize_reuse(reuse)
    per_node = resolve_reuse(graph, reuse)
    brd = None if board is None else load_board(board)
    clock = clock_mhz if clock_mhz is not None else (None if brd is None else brd.clock_mhz)
    if clock is not None and (isinstance(clock, bool) or not isinstance(clock, (int, float))
                              or not math.isfinite(clock) or not 0 < clock <= 1000):
        raise ValueError(f"clock_mhz must be a number in (0, 1000], got {clock!r}")
    ports = _dsp_ports(brd)
    costs = {c.name: c for c in cost_report(graph).nodes}
    binary = binary_edges(graph)

    # alias edges (flatten outputs share their input's array)
    alias: dict[str, str] = {}
    for node in graph.nodes:
        if node.op == "flatten":
            alias[node.output] = alias.get(node.inputs[0], node.inputs[0])

    shapes = {n.name: (_stream_shape if stream else _shape)(graph, n, per_node[n.name])
              for n in graph.nodes}
    readers: dict[str, int] = {}
    for node in graph.nodes:
        for edge, lanes in shapes[node.name].read_lanes.items():
            base = alias.get(edge, edge)
            readers[base] = max(readers.get(base, 1), lanes)

    fifos = _stream_fifos(graph) if stream else None
    rows: list[LayerEstimate] = []
    for node in graph.nodes:
        row = _layer(graph, node, shapes[node.name], costs[node.name], binary, ports, readers,
                     fifos)
        rows.append(dataclasses.replace(row, reuse=per_node[node.name]))
    rows.append(_axis_row(graph, readers, stream))
    total = ResourceEstimate(latency_cycles=0)
    for r in rows:
        total = total + r.estimate
    interval = None
    if stream:
        latency, interval = _stream_timing(graph, shapes, {r.node: r for r in rows})
        total = dataclasses.replace(total, latency_cycles=latency)
    timing = ("layers run one after another (io=parallel, no DATAFLOW); interval = latency"
              if not stream else
              "layers overlap (io=stream, DATAFLOW): latency from the first input word to the "
              "last output word, interval = the busiest process; per-layer cycles are each "
              "process's busy cycles")
    return ResourceReport(
        layers=tuple(rows), reuse=reuse, board=brd,
        clock_mhz=None if clock is None else float(clock), total=total,
        model=str(graph.meta.get("model", "graph")), io=io, interval=interval,
        notes=(ESTIMATE_NOTE,
               f"DSP model: {'DSP48E1' if ports[0] == 25 else 'DSP48E2'} "
               f"{ports[0]}x{ports[1]} multipliers; products with both operands <= "
               f"{LUT_MULT_MAX_BITS} bits or a 1-bit operand map to LUTs",
               "K-hot constants are shift-adds: 0 DSP", timing,
               "not included: AXI DMA, interconnect and processing-system logic"),
    )


def _window_rows(graph: Graph, node: Node) -> tuple[int, int]:
    """(line-buffer rows, input rows read before the first output row) of a window layer."""
    a = node.attrs
    kh = int(node.params["weight"].shape[2]) if "weight" in node.params else pair(a["kernel"])[0]
    dil = pair(a.get("dilation", 1))[0]
    pad = pair(a.get("padding", 0))[0]
    in_h = int(graph.edges[node.inputs[0]].shape[1])
    span = (kh - 1) * dil + 1
    return span, max(1, min(span - pad, in_h))


def _stream_shape(graph: Graph, node: Node, reuse: int) -> _Shape:
    """The streaming writer's folding of ``node`` (per pixel; see the module docstring)."""
    if node.op in ("dense", "binary_dense"):
        return _shape(graph, node, reuse)
    out = graph.edges[node.output]
    chan, pixels = edge_pixels(out.shape)
    in_c, in_pixels = edge_pixels(graph.edges[node.inputs[0]].shape)
    extra = in_pixels if node.op in _WINDOW_OPS else 0  # the line buffer reads every input pixel
    if node.op in ("conv2d", "binary_conv2d"):
        w = node.params["weight"]
        k = int(math.prod(w.shape[1:]))
        groups = int(node.attrs["groups"])
        cout_g = int(w.shape[0]) // groups
        red, lanes = _fold(k, cout_g, reuse)
        per_pixel = groups * _ceil(cout_g, lanes)
        return _Shape(red * lanes, pixels * per_pixel, _ceil(k, red), lanes, {},
                      per_pixel * _ceil(k, red), pixels, extra)
    if node.op in ("batchnorm", "threshold"):
        u = _unroll(chan, reuse)
        return _Shape(u, pixels * _ceil(chan, u), 1, u, {}, _ceil(chan, u), pixels)
    if node.op in ("maxpool2d", "avgpool2d"):
        kh, kw = pair(node.attrs["kernel"])
        u = _unroll(chan, reuse, kh * kw)
        return _Shape(u, pixels, _ceil(chan, u), u, {}, _ceil(chan, u), pixels, extra)
    if node.op == "flatten":
        return _Shape(1, 1, in_pixels, 1, {}, None, 1)
    if node.op in ("input", "relu", "hardtanh", "add", "thermometer"):
        u = _unroll(in_c, reuse, int(node.attrs.get("levels", 1)))
        return _Shape(u, pixels, _ceil(in_c, u), u, {}, _ceil(in_c, u), pixels)
    raise ValueError(f"node {node.name!r}: no resource model for op {node.op!r}")


def _stream_fifos(graph: Graph) -> dict[str, list[tuple[int, int]]]:
    """Per edge, the FIFOs the streaming writer gives it as ``(depth in pixels, count)``: one of
    depth 2; an edge with d > 1 readers (an output port counts) also 2 * (d - 1) streams of a
    whole tensor from its chain of clones."""
    readers = {e: 0 for e in graph.edges}
    for node in graph.nodes:
        for e in node.inputs:
            readers[e] += 1
    for e in graph.outputs:
        readers[e] += 1
    out: dict[str, list[tuple[int, int]]] = {}
    for e, d in readers.items():
        fifos = [(2, 1)]
        if d > 1:
            fifos.append((edge_pixels(graph.edges[e].shape)[1], 2 * (d - 1)))
        out[e] = fifos
    return out


def _stream_timing(graph: Graph, shapes: Mapping[str, _Shape],
                   rows: Mapping[str, LayerEstimate]) -> tuple[int, int]:
    """(latency, interval) in cycles of the DATAFLOW pipeline (see the module docstring)."""
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
        per_pixel = _ceil(busy, max(sh.pixels, 1))
        f_in = max(first[i] for i in node.inputs)
        l_in = max(last[i] for i in node.inputs)
        if node.op in _WINDOW_OPS:
            _, rows_first = _window_rows(graph, node)
            in_w = int(graph.edges[node.inputs[0]].shape[2])
            fill = rows_first * in_w + per_pixel
        elif node.op in ("dense", "binary_dense", "flatten"):
            fill = busy
        else:
            fill = per_pixel
        first[node.output] = f_in + fill
        last[node.output] = max(l_in + per_pixel, f_in + busy)
    out_words = sum(int(math.prod(graph.edges[o].shape)) for o in graph.outputs)
    latency = max((last[o] for o in graph.outputs), default=in_words) + out_words
    return latency, max(busiest, in_words, out_words)


def _shape(graph: Graph, node: Node, reuse: int) -> _Shape:
    """The writer's folding of ``node``: parallel units, busy cycles and read/write lanes."""
    out = graph.edges[node.output]
    n = int(math.prod(out.shape)) if out.shape else 1
    x = node.inputs[0]
    if node.op in ("dense", "binary_dense"):
        n_in = int(node.params["weight"].shape[1])
        n_out = int(node.params["weight"].shape[0])
        red, lanes = _fold(n_in, n_out, reuse)
        return _Shape(red * lanes, _ceil(n_out, lanes), _ceil(n_in, red), lanes, {x: red})
    if node.op in ("conv2d", "binary_conv2d"):
        w = node.params["weight"]
        k = int(math.prod(w.shape[1:]))
        cout = int(w.shape[0])
        p = n // cout
        red, lanes = _fold(k, p, reuse)
        return _Shape(red * lanes, cout * _ceil(p, lanes), _ceil(k, red), lanes,
                      {x: red * lanes})
    if node.op == "batchnorm":
        c = int(node.params["scale"].shape[0])
        s = n // c
        u = _unroll(s, reuse)
        return _Shape(u, c, _ceil(s, u), u, {x: u})
    if node.op in ("maxpool2d", "avgpool2d"):
        kh, kw = pair(node.attrs["kernel"])
        u = _unroll(n, reuse, kh * kw)
        return _Shape(u, 1, _ceil(n, u), u, {x: u * kh * kw})
    if node.op == "flatten":
        return _Shape(0, 0, 0, 0, {})
    if node.op in ("input", "relu", "hardtanh", "add", "threshold", "thermometer"):
        u = _unroll(n, reuse)
        return _Shape(u, 1, _ceil(n, u), u, {i: u for i in node.inputs})
    raise ValueError(f"node {node.name!r}: no resource model for op {node.op!r}")


def _mult_model(node: Node, key: str, a_t: FixedType, b_t: FixedType, on_binary: bool,
                ports: tuple[int, int]) -> tuple[str, int, int, int]:
    """(impl, DSP per multiplier, LUT per multiplier, latency) of ``x * node.params[key]``."""
    if f"{key}_digits" in node.params:
        k = int(node.attrs.get(f"{key}_khot", node.params[f"{key}_digits"].shape[-2]))
        return "shift-add", 0, 0, 1 + _clog2(k)
    if on_binary:
        return "sign", 0, b_t.width, 1
    dpm = dsp_per_multiply(a_t, b_t, ports)
    if dpm == 0:
        return "lut", 0, a_t.width * b_t.width, 2
    return "dsp", dpm, 0, 3 + (1 if dpm > 1 else 0)


def _layer(graph: Graph, node: Node, sh: _Shape, cost: NodeCost, binary: set[str],
           ports: tuple[int, int], readers: Mapping[str, int],
           fifos: Mapping[str, list[tuple[int, int]]] | None = None) -> LayerEstimate:
    """One row of the estimate; ``fifos`` (the streaming architecture's FIFOs per edge) replaces
    the activation arrays of the parallel architecture by FIFOs and line buffers."""
    a = node.attrs
    out_e = graph.edges[node.output]
    out_t = out_e.type
    n_out = int(math.prod(out_e.shape)) if out_e.shape else 1
    in_types = tuple(graph.edges[i].type.cpp() for i in node.inputs)
    x_t = graph.edges[node.inputs[0]].type
    acc_t: FixedType | None = a.get("acc_type") if isinstance(a.get("acc_type"),
                                                              FixedType) else None
    weight_t: str | None = None
    mem = _Mem()
    lut = ff = dsp = 0
    multipliers = 0
    impl, dpm, depth = "-", 0, 2
    notes: list[str] = []
    ii = max(sh.ii, 1) if node.op != "flatten" else 0
    cii = ii if sh.const_ii is None else sh.const_ii  # cycles per pass over the constants
    acc_w = acc_t.width if acc_t is not None else out_t.width

    if node.op in ("dense", "conv2d", "batchnorm"):
        key = "scale" if node.op == "batchnorm" else "weight"
        b_t = a["scale_type" if key == "scale" else "weight_type"]
        weight_t = b_t.cpp()
        impl, dpm, lut_pm, mlat = _mult_model(node, key, x_t, b_t,
                                              node.inputs[0] in binary, ports)
        if impl in ("dsp", "lut"):
            multipliers = min(sh.parallel, cost.mult_ops)
            dsp += multipliers * dpm
            lut += multipliers * lut_pm
            ff += multipliers * (x_t.width + b_t.width) if impl == "lut" else 0
            if multipliers == 0:
                impl, dpm = "-", 0
                notes.append("every constant is 0 or +-2^k: no multiplier")
        elif impl == "sign":
            lut += sh.parallel * lut_pm
            ff += sh.parallel * b_t.width
        elif impl == "shift-add":
            k = int(a.get(f"{key}_khot", 1))
            notes.append(f"K-hot (K={k}): shifts and adds, 0 DSP")
            if cii > 1:
                prod_w = x_t.width + b_t.width
                lut += sh.parallel * k * prod_w * _ceil(_clog2(b_t.width), 2)
        if node.op == "batchnorm":
            c = int(node.params["scale"].shape[0])
            depth = mlat + 2
            mem.add(c, b_t.width, 1)
            mem.add(c, a["shift_type"].width, 1)
        else:
            w = node.params["weight"]
            red_len = int(math.prod(w.shape[1:]))
            depth = mlat + _clog2(red_len) + 2
            if cii > 1:
                mem.add(int(w.size), b_t.width, min(int(w.size), sh.parallel))
                if "bias" in node.params:
                    mem.add(int(w.shape[0]), a["bias_type"].width, sh.write_lanes)
            else:
                notes.append("fully unrolled: constants are logic")
        adders = _ceil(cost.additions, ii)
        lut += adders * acc_w
        ff += adders * acc_w
        if impl == "dsp":
            notes.append(f"{dpm} DSP per {x_t.width}x{b_t.width}-bit multiply")
        elif impl == "lut":
            notes.append(f"{x_t.width}x{b_t.width}-bit multiplies in LUTs")
        if sh.parallel >= MAX_UNROLL:
            notes.append(f"folding capped at the {MAX_UNROLL} unroll limit")
    elif node.op in ("binary_dense", "binary_conv2d"):
        impl = "xnor"
        weight_t = "binary {-1,+1}"
        fan_in = int(a["fan_in"])
        xnor_in_flight = _ceil(cost.xnor_bits, ii)
        lut += 2 * xnor_in_flight
        ff += sh.write_lanes * acc_w
        depth = 1 + _clog2(fan_in) + 2
        w = node.params["weight"]
        if cii > 1:
            mem.add(int(w.size), 1, min(int(w.size), sh.parallel))
        if "scale" in node.params:
            s_t = a["scale_type"]
            s_impl, s_dpm, s_lut, _ = _mult_model(node, "scale", acc_t or x_t, s_t, False, ports)
            if s_impl in ("dsp", "lut"):
                multipliers = min(sh.write_lanes, cost.mult_ops)
                dsp += multipliers * s_dpm
                lut += multipliers * s_lut
            lut += _ceil(max(cost.additions - cost.xnor_bits, 0), ii) * acc_w
            mem.add(int(node.params["scale"].size), s_t.width, 1)
        notes.append("XNOR-popcount, 0 DSP" if multipliers == 0 else "XNOR-popcount + scale")
    elif node.op == "avgpool2d":
        s_t = a["sum_type"]
        kh, kw = pair(a["kernel"])
        lut += _ceil(cost.additions, ii) * s_t.width
        ff += sh.parallel * s_t.width
        depth = 2 + _clog2(kh * kw)
        if cost.mult_ops:
            r_t = a["recip_type"]
            impl, dpm, lut_pm, mlat = _mult_model(node, "recip", s_t, r_t, False, ports)
            multipliers = min(sh.parallel, cost.mult_ops)
            dsp += multipliers * dpm
            lut += multipliers * lut_pm
            depth += mlat
    elif node.op == "add":
        lut += _ceil(cost.additions, ii) * acc_w
    elif node.op in ("relu", "hardtanh", "maxpool2d"):
        lut += _ceil(cost.comparisons, ii) * 2 * x_t.width
        if node.op == "maxpool2d":
            kh, kw = pair(a["kernel"])
            depth += _clog2(kh * kw)
    elif node.op in ("threshold", "thermometer"):
        lut += _ceil(cost.comparisons, ii) * x_t.width
        key = "threshold" if node.op == "threshold" else "thresholds"
        mem.add(int(node.params[key].size), a["threshold_type"].width, 1)
    elif node.op == "input":
        pass
    elif node.op == "flatten":
        notes.append("no hardware: arrays are NCHW-flat" if fifos is None else
                     "gathers the tensor into one NCHW pixel")
    else:  # pragma: no cover - _shape refused it already
        raise ValueError(f"node {node.name!r}: no resource model for op {node.op!r}")

    if node.op not in _NO_CAST_OPS and not (node.op.startswith("binary_")
                                            and "scale" not in node.params):
        src_t = acc_t if acc_t is not None else x_t
        lut += sh.write_lanes * _cast_luts(src_t, out_t)
    if node.op != "flatten" or fifos is not None:
        ff += sh.write_lanes * out_t.width
        lut += LAYER_CONTROL_LUT
        ff += LAYER_CONTROL_FF
    if fifos is None and node.op != "flatten":
        mem.add(n_out, out_t.width, max(sh.write_lanes, readers.get(node.output, 1)))
    elif fifos is not None:
        chan = edge_pixels(out_e.shape)[0]
        for fifo_depth, count in fifos[node.output]:  # count FIFOs: one bank each
            mem.add(fifo_depth * count, chan * out_t.width, count)
        if node.op in _WINDOW_OPS:
            span, _ = _window_rows(graph, node)
            in_e = graph.edges[node.inputs[0]]
            in_c, in_w = int(in_e.shape[0]), int(in_e.shape[2])
            mem.add(span * in_w * in_c, x_t.width, in_c)
            notes.append(f"line buffer: {span} rows x {in_w} x {in_c}")
        if node.op == "flatten":
            mem.add(n_out, out_t.width, 1)
    est = ResourceEstimate(lut=lut + mem.lut, ff=ff + mem.ff, dsp=dsp, bram18k=mem.bram18k,
                           latency_cycles=sh.cycles(depth))
    n_mults = cost.macs if node.op in ("dense", "conv2d", "batchnorm", "binary_dense",
                                       "binary_conv2d") else cost.mult_ops
    return LayerEstimate(
        node=node.name, op=node.op, input_types=in_types, output_type=out_t.cpp(),
        weight_type=weight_t, acc_type=None if acc_t is None else acc_t.cpp(),
        n_mults=int(n_mults), parallel=int(sh.parallel), multipliers=int(multipliers),
        mult_impl=impl, dsp_per_mult=int(dpm), ii=int(ii), estimate=est, notes=tuple(notes))


def _axis_row(graph: Graph, readers: Mapping[str, int], stream: bool = False) -> LayerEstimate:
    """The AXI-Stream wrapper: stream in, output copy, stream out, port arrays (``stream``:
    words to pixels and back inside the DATAFLOW region, no port arrays)."""
    mem = _Mem()
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

