"""The hardware cost primitives of the HLS resource estimate (see :mod:`.estimate` for the model).

Multipliers (DSP48 or LUT), memories (registers, LUTRAM, BRAM18K), casts, a layer's folding
(:class:`Shape`) and the per-layer accumulator (:class:`LayerCost`) that each op's HLS rule
(:mod:`.rules`) fills in. Everything here is an estimate, never a synthesis result.

Example:
    >>> m = Mem()
    >>> m.add(4096, 8, 1); m.add(16, 8, 8)
    >>> m.bram18k, m.ff
    (2, 128)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qfx.backends.hls.boards import Board
from qfx.fixed.fixed_type import FixedType
from qfx.fixed.hwcost import FABRIC_MULT_MAX_PRODUCT, multiplier_cost
from qfx.ir.cost import NodeCost
from qfx.ir.graph import Graph, Node, pair

__all__ = ["BRAM_MIN_BITS", "FABRIC_MULT_MAX_PRODUCT", "REG_MAX_DEPTH", "LayerCost", "Mem", "Shape",
           "cast_luts", "ceil_div", "clog2", "dsp_per_multiply", "dsp_ports", "mult_model",
           "window_rows"]

#: A memory bank smaller than this (bits) is LUTRAM / LUT-ROM, else BRAM18K.
BRAM_MIN_BITS = 1024
#: Banks at most this deep are registers.
REG_MAX_DEPTH = 2

_BRAM18K_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))


def clog2(n: int) -> int:
    """ceil(log2(n)), 0 for n <= 1."""
    return max(0, (int(n) - 1).bit_length())


def ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for integers."""
    return -(-int(a) // int(b))


def dsp_ports(board: Board | None) -> tuple[int, int]:
    """(A, B) widths of the DSP multiplier: DSP48E1 25x18 on Zynq-7000, else DSP48E2 27x18."""
    if board is not None and board.ps == "processing_system7":
        return 25, 18
    return 27, 18


def dsp_per_multiply(a: FixedType | int, b: FixedType | int, ports: tuple[int, int] = (27, 18)
                     ) -> int:
    """DSP slices of one multiplier of operands ``a`` x ``b`` (FixedTypes or signed widths);
    0 when the product maps to LUTs (``a.width * b.width <= FABRIC_MULT_MAX_PRODUCT`` = 55).

    Example:
        >>> dsp_per_multiply(FixedType(8, 3), FixedType(8, 1))
        1
        >>> dsp_per_multiply(FixedType(30, 3), FixedType(30, 1))
        4
        >>> dsp_per_multiply(FixedType(4, 1), FixedType(3, 1))
        0
        >>> dsp_per_multiply(FixedType(7, 1), FixedType(7, 1))
        0
    """
    return multiplier_cost(_raw_width(a), _raw_width(b), _signed_width(a), _signed_width(b),
                           ports)[0]


def _raw_width(t: FixedType | int) -> int:
    return t.width if isinstance(t, FixedType) else int(t)


def _signed_width(t: FixedType | int) -> int:
    if isinstance(t, FixedType):
        return t.width + (0 if t.signed else 1)
    return int(t)


def _bram18k(depth: int, width: int) -> int:
    return min(ceil_div(depth, d) * ceil_div(width, w) for d, w in _BRAM18K_SHAPES)


@dataclass
class Mem:
    """LUT / FF / BRAM18K of the memories added to it."""

    lut: int = 0
    ff: int = 0
    bram18k: int = 0

    def add(self, n: int, width: int, banks: int, rom: bool = False) -> None:
        """A memory of ``n`` words of ``width`` bits split into ``banks`` banks; ``rom``: the
        layer's constants, which are never registers (a bank of one word is a constant, wiring;
        a small bank is a LUT-ROM, ``ceil(depth / 64) * width`` LUTs)."""
        if n <= 0 or width <= 0:
            return
        banks = max(1, min(int(banks), int(n)))
        depth = ceil_div(n, banks)
        if rom and depth == 1:
            return
        if depth <= REG_MAX_DEPTH and not rom:
            self.ff += n * width
        elif depth * width < BRAM_MIN_BITS:
            self.lut += banks * ceil_div(depth, 64) * width
        else:
            self.bram18k += banks * _bram18k(depth, width)


def cast_luts(src: FixedType, t: FixedType) -> int:
    """LUTs of one cast from ``src`` to ``t``: rounding increment and saturation logic (none
    when ``t`` holds every value of ``src``: the cast is wiring)."""
    if t.contains(src):
        return 0
    rounds = t.rounding != "TRN" and t.frac_bits < src.frac_bits
    return t.width * (int(rounds) + int(t.overflow != "WRAP"))


def mult_model(node: Node, key: str, a_t: FixedType, b_t: FixedType, on_binary: bool,
               ports: tuple[int, int]) -> tuple[str, int, int, int]:
    """(impl, DSP per multiplier, LUT per multiplier, latency) of ``x * node.params[key]``."""
    if f"{key}_digits" in node.params:
        k = int(node.attrs.get(f"{key}_khot", node.params[f"{key}_digits"].shape[-2]))
        return "shift-add", 0, 0, 1 + clog2(k)
    if on_binary:
        return "sign", 0, b_t.width, 1
    dpm, luts = multiplier_cost(a_t.width, b_t.width, _signed_width(a_t), _signed_width(b_t),
                                ports)
    if dpm == 0:
        return "lut", 0, luts, 2
    return "dsp", dpm, 0, 3 + (1 if dpm > 1 else 0)


def window_rows(graph: Graph, node: Node) -> tuple[int, int]:
    """(line-buffer rows, input rows read before the first output row) of a window layer."""
    if len(graph.edges[node.inputs[0]].shape) == 2:  # [C, L] (conv1d): one row
        return 1, 1
    a = node.attrs
    kh = int(node.params["weight"].shape[2]) if "weight" in node.params else pair(a["kernel"])[0]
    dil = pair(a.get("dilation", 1))[0]
    pad = pair(a.get("padding", 0))[0]
    in_h = int(graph.edges[node.inputs[0]].shape[1])
    span = (kh - 1) * dil + 1
    return span, max(1, min(span - pad, in_h))


@dataclass
class Shape:
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


@dataclass
class LayerCost:
    """One layer's estimate while it is being built: the inputs (``graph``, ``node``, its
    folding ``sh``, its arithmetic ``cost``, the binary edges, the DSP ports, ``stream``) and
    the running totals an op's rule adds to (logic, registers, DSP, memories, the multiplier
    model, the pipeline ``depth`` and notes)."""

    graph: Graph
    node: Node
    sh: Shape
    cost: NodeCost
    binary: set[str]
    ports: tuple[int, int]
    stream: bool
    ii: int
    lut: int = 0
    ff: int = 0
    dsp: int = 0
    mem: Mem = field(default_factory=Mem)
    multipliers: int = 0
    impl: str = "-"
    dpm: int = 0
    depth: int = 2
    weight_t: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def x_t(self) -> FixedType:
        """The (first) input's type."""
        return self.graph.edges[self.node.inputs[0]].type

    @property
    def out_t(self) -> FixedType:
        return self.graph.edges[self.node.output].type

    @property
    def acc_t(self) -> FixedType | None:
        t = self.node.attrs.get("acc_type")
        return t if isinstance(t, FixedType) else None

    @property
    def acc_w(self) -> int:
        """The accumulator's width (the output's when the node has none)."""
        return self.acc_t.width if self.acc_t is not None else self.out_t.width

    @property
    def cii(self) -> int:
        """Cycles per pass over the layer's constants."""
        return self.ii if self.sh.const_ii is None else self.sh.const_ii
