"""The HLS backend's per-op rules: one :class:`HLSRule` per IR op, registered by op name.

A rule holds everything the backend knows about its op: the C++ typedefs and constants the
firmware needs (:meth:`HLSRule.typedefs`, :meth:`HLSRule.constants`), the layer function and
config struct of ``qfx_layers.h`` / ``qfx_stream.h`` (:meth:`HLSRule.config`), and the op's
resource model (:meth:`HLSRule.shape` / :meth:`HLSRule.stream_shape`: the writer's folding;
:meth:`HLSRule.resources`: its logic, multipliers and memories). The plan
(:mod:`qfx.backends.hls.plan`) and the estimate (:mod:`qfx.backends.hls.estimate`) iterate
these rules; neither branches on ``node.op``. The ops with a rule are :data:`SUPPORTED_OPS`.

Adding an op to the HLS backend: a layer in ``qfx_layers.h`` (and ``qfx_stream.h``), then one
rule here decorated with :func:`hls_rule`.

Example:
    >>> rule("conv2d").counts_macs, rule("flatten").aliases, rule("no_such_op") is None
    (True, True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from qfx.backends.hls.costmodel import (
    LayerCost,
    Shape,
    ceil_div,
    clog2,
    mult_model,
)
from qfx.backends.hls.layout import edge_pixels
from qfx.backends.hls.reuse import MAX_UNROLL, fold, unroll
from qfx.fixed.fixed_type import FixedType
from qfx.fixed.hwcost import adder_luts
from qfx.ir.graph import Edge, Graph, Node, pair
from qfx.ir.ops import spec
from qfx.ir.ops.base import khot_k
from qfx.ir.ops.spatial import pad_raw, pads4

__all__ = ["RULES", "SUPPORTED_OPS", "Const", "HLSRule", "LayerConfig", "hls_rule", "pack_bits",
           "rule"]

#: K-hot digit tables (sign in {-1, 0, +1}, shift 0..62) and packed binary weights: the types of
#: their raw storage in the generated headers.
DSIGN_T = FixedType(2, 2)
DSHIFT_T = FixedType(6, 6, False)
WORD_BITS = 32
WORD_T = FixedType(WORD_BITS, WORD_BITS, False)
DIR_T = FixedType(2, 2)


def pack_bits(weight: np.ndarray) -> np.ndarray:
    """Rows of a {-1, +1} weight ([out, ...]) as words of ``WORD_BITS`` bits, [out, words]:
    bit i % 32 of word i // 32 is 1 where the row's i-th weight is +1; the padding bits are 0.

    Example:
        >>> pack_bits(np.array([[1, -1, 1], [-1, -1, -1]])).tolist()
        [[5], [0]]
    """
    rows = (weight.reshape(weight.shape[0], -1) > 0).astype(np.int64)
    n = rows.shape[1]
    words = -(-n // WORD_BITS)
    padded = np.zeros((rows.shape[0], words * WORD_BITS), dtype=np.int64)
    padded[:, :n] = rows
    place = np.left_shift(np.int64(1), np.arange(WORD_BITS, dtype=np.int64))
    return (padded.reshape(rows.shape[0], words, WORD_BITS) * place).sum(-1)


# ====================================================================== what a rule returns
@dataclass(frozen=True)
class Const:
    """One constant array of a node: its ``kind`` (names the array: ``<node>_w``, ...), raw
    integer values, storage type, layout comment and the node typedef kind it is declared with
    (``tkind``; ``None``: the same as ``kind``)."""

    kind: str
    raw: np.ndarray
    type: FixedType
    layout: str
    tkind: str | None = None


@dataclass
class LayerConfig:
    """One layer's config struct while its rule fills it in: member typedefs (``types``),
    integer constants (``ints``), the constants passed to the layer (``kinds``) and the layer
    function (``func``). ``n`` is the output's size (one pixel's values with ``stream``);
    ``tname`` / ``ntype``: the typedef names of the edges / of the node's ``(node, kind)``."""

    graph: Graph
    node: Node
    reuse: int
    stream: bool
    tname: Mapping[str, str]
    ntype: Mapping[tuple[str, str], str]
    func: str = ""
    types: list[tuple[str, str]] = field(default_factory=list)
    ints: list[tuple[str, int]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.func = self.func or self.node.op
        self.types = self.types or [("in_t", self.tname[self.x.name]),
                                    ("out_t", self.tname[self.node.output])]

    @property
    def x(self) -> Edge:
        return self.graph.edges[self.node.inputs[0]]

    @property
    def out(self) -> Edge:
        return self.graph.edges[self.node.output]

    @property
    def n(self) -> int:
        return edge_pixels(self.out.shape)[0] if self.stream else int(math.prod(self.out.shape))

    def typ(self, member: str, kind: str) -> None:
        """Add the member typedef ``member`` naming the node's ``kind`` type."""
        self.types.append((member, self.ntype[(self.node.name, kind)]))

    def khot(self, key: str) -> bool:
        """Switch to the K-hot variant of the layer when ``key`` has digits."""
        k = khot_k(self.node, key)
        if k is None:
            return False
        self.typ("dsign_t", "dsign")
        self.typ("dshift_t", "dshift")
        self.ints.append(("khot", k))
        return True

    def window(self, padded: bool = True) -> list[tuple[str, int]]:
        """in/out sizes, kernel, stride, padding and dilation of a window op (``padded``
        False: no padding or dilation, whatever the attrs say)."""
        a, x, out = self.node.attrs, self.x, self.out
        if "weight" in self.node.params:
            kh, kw = self.node.params["weight"].shape[2:]
        else:
            kh, kw = pair(a["kernel"])
        (ph, pw), (dh, dw) = ((pair(a["padding"]), pair(a["dilation"])) if padded
                              else ((0, 0), (1, 1)))
        sh, sw = pair(a["stride"])
        return [("in_c", x.shape[0]), ("in_h", x.shape[1]), ("in_w", x.shape[2]),
                ("out_c", out.shape[0]), ("out_h", out.shape[1]), ("out_w", out.shape[2]),
                ("k_h", kh), ("k_w", kw), ("stride_h", sh), ("stride_w", sw), ("pad_h", ph),
                ("pad_w", pw), ("dil_h", dh), ("dil_w", dw)]


# ====================================================================== the rule contract
class HLSRule:
    """The HLS backend's rule for one op (see the module docstring).

    Traits: ``aliases``: the output is the input's data (no layer; a flatten); ``whole_tensor``:
    streamed, the first output comes after all the layer's work; ``counts_macs``: the estimate's
    ``n_mults`` is the layer's MACs (else its true multiplications).
    """

    op: ClassVar[str]
    aliases: ClassVar[bool] = False
    whole_tensor: ClassVar[bool] = False
    counts_macs: ClassVar[bool] = False

    # ------------------------------------------------------------------ firmware
    def typedefs(self, node: Node) -> list[tuple[str, FixedType, str]]:
        """The node's typedefs beyond its typed attrs: ``(kind, type, note)``."""
        return khot_typedefs(node)

    def constants(self, node: Node) -> list[Const]:
        """The node's constant arrays, in the order the layer takes them."""
        return []

    def config(self, c: LayerConfig) -> None:
        """Fill in the node's config struct (``c.types``, ``c.ints``, ``c.kinds``, ``c.func``)."""

    def variant(self, graph: Graph, node: Node, reuse: int, stream: bool) -> str | None:
        """A layer variant that changes the node's typedefs and constants at this folding (the
        plan then passes it to :meth:`typedefs` / :meth:`constants` as ``variant``); None: the
        node's own (the default)."""
        return None

    # ------------------------------------------------------------------ estimate
    def shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        """The parallel writer's folding of the node."""
        raise NotImplementedError

    def stream_shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        """The streaming writer's folding of the node (per pixel)."""
        return self.shape(graph, node, reuse)

    def resources(self, r: LayerCost) -> None:
        """Add the op's logic, multipliers and constant memories to ``r``."""

    def casts(self, node: Node) -> bool:
        """True when the layer casts its result to the output type (rounding / saturation)."""
        return spec(node.op).casts


#: op name -> its rule, in the order :data:`SUPPORTED_OPS` lists them.
RULES: dict[str, HLSRule] = {}


def hls_rule(*ops: str) -> Callable[[type[HLSRule]], type[HLSRule]]:
    """Class decorator: register one instance of a rule for each of ``ops``."""
    def register(cls: type[HLSRule]) -> type[HLSRule]:
        for op in ops:
            if op in RULES:
                raise ValueError(f"HLS rule for op {op!r} registered twice")
            spec(op)  # an IR op
            inst = cls()
            inst.op = op
            RULES[op] = inst
        return cls
    return register


def rule(op: str) -> HLSRule | None:
    """The HLS rule of ``op`` (None when the backend has no layer for it)."""
    return RULES.get(op)


def khot_typedefs(node: Node) -> list[tuple[str, FixedType, str]]:
    """The digit typedefs of a node with K-hot constants."""
    if any(khot_k(node, key) for key in spec(node.op).khot_keys):
        return [("dsign", DSIGN_T, "K-hot digit signs (-1, 0, +1)"),
                ("dshift", DSHIFT_T, "K-hot digit shifts")]
    return []


def _const_or_digits(node: Node, key: str, layout: str) -> list[Const]:
    """``node.params[key]`` in its type, or its K-hot digit tables."""
    if khot_k(node, key):
        digits = node.params[f"{key}_digits"]
        layout = f"{layout}[K={digits.shape[-2]}] (K-hot digits of {key})"
        return [Const(f"{key}_dsign", digits[..., 0], DSIGN_T, layout, "dsign"),
                Const(f"{key}_dshift", digits[..., 1], DSHIFT_T, layout, "dshift")]
    return [Const(key, node.params[key], node.attrs[f"{key}_type"], layout)]


def _pixels(graph: Graph, node: Node) -> tuple[int, int, int, int, int]:
    """(out channels, out pixels, in channels, in pixels, extra cycles) of a streamed node:
    a window layer's line buffer reads every input pixel."""
    chan, pixels = edge_pixels(graph.edges[node.output].shape)
    in_c, in_pixels = edge_pixels(graph.edges[node.inputs[0]].shape)
    return chan, pixels, in_c, in_pixels, in_pixels if spec(node.op).window else 0


def _out_size(graph: Graph, node: Node) -> int:
    shape = graph.edges[node.output].shape
    return int(math.prod(shape)) if shape else 1


# ====================================================================== element-wise
class _Elementwise(HLSRule):
    """Lanes over the output's values (one pixel's channels when streamed)."""

    def shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        n = _out_size(graph, node)
        u = unroll(n, reuse)
        return Shape(u, 1, ceil_div(n, u), u, {i: u for i in node.inputs})

    def stream_shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        _, pixels, in_c, _, _ = _pixels(graph, node)
        u = unroll(in_c, reuse, int(node.attrs.get("levels", 1)))
        return Shape(u, pixels, ceil_div(in_c, u), u, {}, ceil_div(in_c, u), pixels)


@hls_rule("input")
class _Input(_Elementwise):
    def config(self, c: LayerConfig) -> None:
        c.func = "cast"
        c.ints += [("n", c.n), ("unroll", unroll(c.n, c.reuse))]


def _mac_layer_resources(r: LayerCost, key: str) -> None:
    """dense / conv2d / batchnorm: ``x * node.params[key]`` multipliers (DSP, LUT, sign or
    K-hot shift-adds), the accumulation's adders, and the constants' ROMs."""
    node, sh, a, x_t = r.node, r.sh, r.node.attrs, r.x_t
    shifted = shifted_mantissas(node, key)
    b_t = a[f"{key}_type"] if shifted is None else shifted[2]  # per-channel: the mantissas'
    if shifted is not None:
        _shifter_resources(r, key, b_t, shifted[1])
    r.weight_t = b_t.cpp()
    r.impl, r.dpm, lut_pm, mlat = mult_model(node, key, x_t, b_t, node.inputs[0] in r.binary,
                                             r.ports)
    if r.impl in ("dsp", "lut"):
        r.multipliers = min(sh.parallel, r.cost.mult_ops)
        r.dsp += r.multipliers * r.dpm
        r.lut += r.multipliers * lut_pm
        r.ff += r.multipliers * (x_t.width + b_t.width) if r.impl == "lut" else 0
        if r.multipliers == 0:
            r.impl, r.dpm = "-", 0
            r.notes.append("every constant is 0 or +-2^k: no multiplier")
    elif r.impl == "sign":
        r.lut += sh.parallel * lut_pm
        r.ff += sh.parallel * b_t.width
    elif r.impl == "shift-add":
        k = int(a.get(f"{key}_khot", 1))
        r.notes.append(f"K-hot (K={k}): shifts and adds, 0 DSP")
        if r.cii > 1:
            prod_w = x_t.width + b_t.width
            r.lut += sh.parallel * k * prod_w * ceil_div(clog2(b_t.width), 2)
    if key == "scale":  # batchnorm
        c = int(node.params["scale"].shape[0])
        r.depth = mlat + 2
        r.mem.add(c, b_t.width, 1, rom=True)
        r.mem.add(c, a["shift_type"].width, 1, rom=True)
    else:
        w = node.params["weight"]
        r.depth = mlat + clog2(int(math.prod(w.shape[1:]))) + 2
        if r.cii > 1:
            r.mem.add(int(w.size), b_t.width, min(int(w.size), sh.parallel), rom=True)
            if "bias" in node.params:
                r.mem.add(int(w.shape[0]), a["bias_type"].width, sh.write_lanes, rom=True)
        else:
            r.notes.append("fully unrolled: constants are logic")
    adders = mac_adders(r, key)
    r.lut += adders * adder_luts(r.acc_w)
    r.ff += adders * r.acc_w
    if r.impl == "dsp":
        r.notes.append(f"{r.dpm} DSP per {x_t.width}x{b_t.width}-bit multiply")
    elif r.impl == "lut":
        r.notes.append(f"{x_t.width}x{b_t.width}-bit multiplies in LUTs")
    if sh.parallel >= MAX_UNROLL:
        r.notes.append(f"folding capped at the {MAX_UNROLL} unroll limit")


def mac_adders(r: LayerCost, key: str) -> int:
    """The accumulator-wide adders of a dense / conv2d / batchnorm layer, as its C++ builds them.

    Constants as logic (``cii == 1``: every product has its own multiplier within a pass):
    synthesis propagates them, so a zero term has no adder, and ``additions`` (the nonzero terms
    and bias, ``qfx.ir.cost``) are shared by the ``ii`` passes over the output positions.
    Constants in a ROM (``cii > 1``): every parallel lane adds its product (K-hot: its K digit
    terms) to the adder tree or the accumulator, whatever the value the ROM holds, zero rows and
    columns included (averaging ``additions`` over ``ii`` would count a zero output channel of a
    sequential channel loop as saving adders it does not save)."""
    if r.cii <= 1:
        return ceil_div(r.cost.additions, r.ii)
    return r.sh.parallel * (khot_k(r.node, key) or 1)


# ====================================================================== dense and conv2d
class _WeightLayer(HLSRule):
    """dense / conv2d: weights (or their K-hot digits) and a bias (zeros when the model has
    none, in the accumulator type)."""

    counts_macs = True
    layout: ClassVar[str]

    def typedefs(self, node: Node, variant: str | None = None
                 ) -> list[tuple[str, FixedType, str]]:
        extra = [] if "bias" in node.params else [
            ("bias", node.attrs["acc_type"],
             "no bias in the model: a zero bias in the accumulator type")]
        shifted = _shifted_typedefs(node) if variant == "shifted" else []
        return extra + khot_typedefs(node) + shifted

    def constants(self, node: Node, variant: str | None = None) -> list[Const]:
        out = (_shifted_constants(node, self.layout) if variant == "shifted"
               else _const_or_digits(node, "weight", self.layout))
        if "bias" in node.params:
            return [*out, Const("bias", node.params["bias"], node.attrs["bias_type"], "[out]")]
        zeros = np.zeros(node.params["weight"].shape[0], dtype=np.int64)
        return [*out, Const("bias", zeros, node.attrs["acc_type"],
                            "[out] (zeros: the model has no bias)")]

    def resources(self, r: LayerCost) -> None:
        _mac_layer_resources(r, "weight")

    def weight_config(self, c: LayerConfig, func: str) -> None:
        """The member typedefs and constants of the plain, K-hot or shifted layer ``func``."""
        for m, k in (("acc_t", "acc"), ("weight_t", "weight"), ("bias_t", "bias")):
            c.typ(m, k)
        c.func, c.kinds = func, ["weight", "bias"]
        if c.khot("weight"):
            c.func, c.kinds = f"{func}_khot", ["weight_dsign", "weight_dshift", "bias"]
        elif self.variant(c.graph, c.node, c.reuse, c.stream) == "shifted":
            _shifted_config(c, "weight", "weight_t", "shift_t")
            c.func, c.kinds = f"{func}_shifted", ["weight", "weight_shift", "bias"]

    def variant(self, graph: Graph, node: Node, reuse: int, stream: bool) -> str | None:
        """``"shifted"``: per-channel mantissas and shifts, wherever the weight has per-channel
        shifts, at every folding: the layer sums an output's mantissa products and shifts the
        sum once by the output channel's shift (``qfx_layers.h``, ``shifted_weights``)."""
        return None if shifted_mantissas(node) is None else "shifted"


# ---------------------------------------------------------------------- per-channel formats
# A weight whose output channels have their own formats (``weight_shift``, learned widths) is
# stored as narrow mantissas (raw >> shift[o]) of the narrowest type holding them on the
# tensor's grid, with one shift per output channel (qfx_layers.h ``shifted_weights``): the
# multipliers see each channel's width, not the common wide type, whatever the folding; the
# layer sums an output's mantissa products and shifts the sum once by its channel's shift
# (sum_k x_k * (m_k << s[o]) == (sum_k x_k * m_k) << s[o]): a constant shift (wiring) where
# every multiplier serves one output channel, else one variable shifter per output lane.
def _row_shifts(node: Node, key: str) -> np.ndarray | None:
    """The per-output-channel shifts (attr ``<key>_shift``) of a non-K-hot constant, None
    where there are none."""
    shifts = node.attrs.get(f"{key}_shift")
    if shifts is None or khot_k(node, key) or not any(shifts):
        return None
    return np.array(shifts, dtype=np.int64)


def shifted_mantissas(node: Node, key: str = "weight"
                      ) -> tuple[np.ndarray, np.ndarray, FixedType] | None:
    """(mantissas, shifts, mantissa type) of the constant ``key`` (a weight, a BatchNorm
    scale) with per-channel shifts (attr ``<key>_shift``), or None.

    Example:
        >>> n = Node("fc", "dense", ["x"], "y", {"weight_type": FixedType(8, 2),
        ...          "weight_shift": [0, 3]}, {"weight": np.array([[3, -1], [8, -16]])})
        >>> m, s, t = shifted_mantissas(n)
        >>> m.tolist(), s.tolist(), t.cpp()
        ([[3, -1], [1, -2]], [0, 3], 'ap_fixed<3,-3>')
    """
    shifts = _row_shifts(node, key)
    if shifts is None:
        return None
    w = node.params[key]
    mant = w >> shifts.reshape(-1, *([1] * (w.ndim - 1)))
    t = FixedType.for_raw_range(int(mant.min()), int(mant.max()),
                                node.attrs[f"{key}_type"].frac_bits)
    return mant, shifts, t


#: per constant with per-channel shifts: its mantissas' and shifts' typedef kinds, its name in
#: the typedef notes, its symbol and the shifts' layout.
_SHIFTED_KINDS = {"weight": ("wmant", "wshift", "weight", "w", "[out]"),
                  "scale": ("smant", "sshift", "BatchNorm scale", "scale", "[channel]")}


def _shifted_typedefs(node: Node, key: str = "weight") -> list[tuple[str, FixedType, str]]:
    got = shifted_mantissas(node, key)
    if got is None:
        return []
    mant, shift, what, sym, _ = _SHIFTED_KINDS[key]
    return [(mant, got[2], f"{what} mantissas (per-channel formats: {sym} = m * 2**shift[o])"),
            (shift, DSHIFT_T, f"per-output-channel {what} shifts")]


def _shifted_constants(node: Node, layout: str, key: str = "weight") -> list[Const]:
    got = shifted_mantissas(node, key)
    if got is None:
        return []
    mant, shifts, t = got
    mant_kind, shift_kind, _, _, shift_layout = _SHIFTED_KINDS[key]
    return [Const(key, mant, t, f"{layout} (mantissas, times 2**shift[out])", mant_kind),
            Const(f"{key}_shift", shifts, DSHIFT_T, shift_layout, shift_kind)]


def _shifted_config(c: LayerConfig, key: str, member: str, shift_member: str) -> None:
    """The config members of a layer with per-channel shifts of ``key``: ``member`` names the
    mantissas' type, ``shift_member`` the shifts', and the largest and smallest shift."""
    mant_kind, shift_kind = _SHIFTED_KINDS[key][:2]
    c.types = [(m, t) for m, t in c.types if m != member]
    c.typ(member, mant_kind)
    c.typ(shift_member, shift_kind)
    shifts = c.node.attrs[f"{key}_shift"]
    c.ints += [("max_shift", max(shifts)), ("min_shift", min(shifts))]


def _shifter_resources(r: LayerCost, key: str, m_t: FixedType, shifts: np.ndarray) -> None:
    """The per-output shift of a layer with per-channel formats: wiring where every multiplier
    serves one output channel, else a variable shifter per output lane (``acc_w`` bits,
    ``clog2(max shift + 1)`` mux levels: one LUT per bit and level)."""
    what = f"per-channel formats: {m_t.width}-bit {key} mantissas"
    if _rows_dedicated(r.sh):
        r.notes.append(f"{what}, shifts wired")
        return
    levels = clog2(int(shifts.max()) + 1)
    r.lut += r.sh.write_lanes * r.acc_w * levels
    r.notes.append(f"{what}, {r.sh.write_lanes} shifter(s) of {r.acc_w} bits x {levels} "
                   "levels (one per output lane)")


def _rows_dedicated(sh: Shape) -> bool:
    """Every multiplier serves one output channel: the output channels are all computed in
    parallel (one pass over them per output pixel)."""
    return sh.outer == sh.pixels


def _dense_shape(graph: Graph, node: Node, reuse: int) -> Shape:
    n_in = int(node.params["weight"].shape[1])
    n_out = int(node.params["weight"].shape[0])
    red, lanes = fold(n_in, n_out, reuse)
    return Shape(red * lanes, ceil_div(n_out, lanes), ceil_div(n_in, red), lanes,
                 {node.inputs[0]: red})


def _conv_shape(graph: Graph, node: Node, reuse: int) -> Shape:
    w = node.params["weight"]
    k = int(math.prod(w.shape[1:]))
    cout = int(w.shape[0])
    p = _out_size(graph, node) // cout
    red, lanes = fold(k, p, reuse)
    return Shape(red * lanes, cout * ceil_div(p, lanes), ceil_div(k, red), lanes,
                 {node.inputs[0]: red * lanes})


def _conv_stream_shape(graph: Graph, node: Node, reuse: int) -> Shape:
    """A convolution folds the products of one output pixel (per group)."""
    _, pixels, _, _, extra = _pixels(graph, node)
    w = node.params["weight"]
    k = int(math.prod(w.shape[1:]))
    groups = int(node.attrs["groups"])
    cout_g = int(w.shape[0]) // groups
    red, lanes = fold(k, cout_g, reuse)
    per_pixel = groups * ceil_div(cout_g, lanes)
    return Shape(red * lanes, pixels * per_pixel, ceil_div(k, red), lanes, {},
                 per_pixel * ceil_div(k, red), pixels, extra)


@hls_rule("dense")
class _Dense(_WeightLayer):
    layout = "[out][in]"
    whole_tensor = True

    def config(self, c: LayerConfig) -> None:
        n_in, n_out = c.x.shape[0], c.out.shape[0]
        red, outer = fold(n_in, n_out, c.reuse)
        c.ints += [("n_in", n_in), ("n_out", n_out), ("red_unroll", red), ("out_unroll", outer)]
        self.weight_config(c, "dense")

    shape = staticmethod(_dense_shape)  # type: ignore[assignment]


@hls_rule("conv2d")
class _Conv2d(_WeightLayer):
    layout = "[out_c][in_c/groups][k_h][k_w]"

    def config(self, c: LayerConfig) -> None:
        cout, oh, ow = c.out.shape
        _, cin_g, kh, kw = c.node.params["weight"].shape
        groups = int(c.node.attrs["groups"])
        red, outer = fold(cin_g * kh * kw, cout // groups if c.stream else oh * ow, c.reuse)
        c.ints += [*c.window(), ("groups", groups), ("red_unroll", red), ("out_unroll", outer)]
        self.weight_config(c, "conv2d")

    shape = staticmethod(_conv_shape)  # type: ignore[assignment]
    stream_shape = staticmethod(_conv_stream_shape)  # type: ignore[assignment]


@hls_rule("batchnorm")
class _BatchNorm(HLSRule):
    """x * scale + shift per channel; a scale with per-channel formats (``scale_shift``) is
    stored as narrow mantissas and per-channel shifts (``batchnorm_shifted``: the product by
    the mantissa, shifted by the channel's shift)."""

    counts_macs = True

    def typedefs(self, node: Node, variant: str | None = None
                 ) -> list[tuple[str, FixedType, str]]:
        shifted = _shifted_typedefs(node, "scale") if variant == "shifted" else []
        return khot_typedefs(node) + shifted

    def constants(self, node: Node, variant: str | None = None) -> list[Const]:
        scale = (_shifted_constants(node, "[channel]", "scale") if variant == "shifted"
                 else _const_or_digits(node, "scale", "[channel]"))
        return [*scale,
                Const("shift", node.params["shift"], node.attrs["shift_type"], "[channel]")]

    def variant(self, graph: Graph, node: Node, reuse: int, stream: bool) -> str | None:
        """``"shifted"`` where the scale has per-channel shifts (at every folding)."""
        return None if shifted_mantissas(node, "scale") is None else "shifted"

    def config(self, c: LayerConfig) -> None:
        for m, k in (("acc_t", "acc"), ("scale_t", "scale"), ("shift_t", "shift")):
            c.typ(m, k)
        ch, n = c.x.shape[0], c.n
        c.ints += [("n_chan", ch), ("n_spatial", n // ch), ("unroll", unroll(n // ch, c.reuse)),
                   ("chan_unroll", unroll(ch, c.reuse) if c.stream else 1)]
        c.kinds = ["scale", "shift"]
        if c.khot("scale"):
            c.func, c.kinds = "batchnorm_khot", ["scale_dsign", "scale_dshift", "shift"]
        elif self.variant(c.graph, c.node, c.reuse, c.stream) == "shifted":
            _shifted_config(c, "scale", "scale_t", "sshift_t")
            c.func, c.kinds = "batchnorm_shifted", ["scale", "scale_shift", "shift"]

    def shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        n = _out_size(graph, node)
        c = int(node.params["scale"].shape[0])
        s = n // c
        u = unroll(s, reuse)
        return Shape(u, c, ceil_div(s, u), u, {node.inputs[0]: u})

    def stream_shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        chan, pixels, _, _, _ = _pixels(graph, node)
        u = unroll(chan, reuse)
        return Shape(u, pixels * ceil_div(chan, u), 1, u, {}, ceil_div(chan, u), pixels)

    def resources(self, r: LayerCost) -> None:
        _mac_layer_resources(r, "scale")


# ====================================================================== activations, add
class _Compare(_Elementwise):
    """Compare and select: ``2 * w`` LUTs per comparison."""

    def resources(self, r: LayerCost) -> None:
        r.lut += ceil_div(r.cost.comparisons, r.ii) * 2 * r.x_t.width


@hls_rule("relu")
class _ReLU(_Compare):
    def config(self, c: LayerConfig) -> None:
        c.ints += [("n", c.n), ("unroll", unroll(c.n, c.reuse))]


@hls_rule("hardtanh")
class _HardTanh(_Compare):
    def config(self, c: LayerConfig) -> None:
        c.typ("clamp_t", "clamp")
        a = c.node.attrs
        c.ints += [("n", c.n), ("min_raw", int(a["min_raw"])), ("max_raw", int(a["max_raw"])),
                   ("unroll", unroll(c.n, c.reuse))]


@hls_rule("add")
class _Add(_Elementwise):
    def config(self, c: LayerConfig) -> None:
        node = c.node
        c.types = [("in0_t", c.tname[node.inputs[0]]), ("in1_t", c.tname[node.inputs[1]]),
                   ("out_t", c.tname[node.output])]
        c.typ("acc_t", "acc")
        c.ints += [("n", c.n), ("unroll", unroll(c.n, c.reuse))]

    def resources(self, r: LayerCost) -> None:
        r.lut += ceil_div(r.cost.additions, r.ii) * r.acc_w


# ====================================================================== pooling
class _Pool(HLSRule):
    padded: ClassVar[bool] = True  # average pooling has no padding or dilation

    def config(self, c: LayerConfig) -> None:
        kh, kw = pair(c.node.attrs["kernel"])
        # average pooling has no padding or dilation: the window walk is shared (qfx_layers.h)
        ints = c.window(self.padded)
        del ints[3]  # no out_c: pooling keeps the channels
        c.ints += [("chan", c.x.shape[0]), *ints[1:]]
        self.pool_config(c)
        c.ints.append(("unroll", unroll(c.n, c.reuse, kh * kw)))

    def pool_config(self, c: LayerConfig) -> None:
        raise NotImplementedError

    def shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        n = _out_size(graph, node)
        kh, kw = pair(node.attrs["kernel"])
        u = unroll(n, reuse, kh * kw)
        return Shape(u, 1, ceil_div(n, u), u, {node.inputs[0]: u * kh * kw})

    def stream_shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        chan, pixels, _, _, extra = _pixels(graph, node)
        kh, kw = pair(node.attrs["kernel"])
        u = unroll(chan, reuse, kh * kw)
        return Shape(u, pixels, ceil_div(chan, u), u, {}, ceil_div(chan, u), pixels, extra)


@hls_rule("maxpool2d")
class _MaxPool(_Pool):
    def pool_config(self, c: LayerConfig) -> None:
        c.types = [("in_t", c.tname[c.x.name])]

    def resources(self, r: LayerCost) -> None:
        kh, kw = pair(r.node.attrs["kernel"])
        r.lut += ceil_div(r.cost.comparisons, r.ii) * 2 * r.x_t.width
        r.depth += clog2(kh * kw)


@hls_rule("avgpool2d")
class _AvgPool(_Pool):
    padded = False

    def constants(self, node: Node) -> list[Const]:
        if "recip" not in node.params:
            return []
        r = node.params["recip"]
        return [Const("recip", r.reshape(-1), node.attrs["recip_type"],
                      "[1]" if r.size == 1 else "[out_h][out_w] (1/divisor per position)")]

    def pool_config(self, c: LayerConfig) -> None:
        c.typ("sum_t", "sum")
        c.typ("acc_t", "acc")
        ph, pw = pair(c.node.attrs.get("padding", 0))
        c.ints = [(k, {"pad_h": ph, "pad_w": pw}.get(k, v)) for k, v in c.ints]
        if "recip" in c.node.params:
            c.typ("recip_t", "recip")
            c.func, c.kinds = "avgpool2d_recip", ["recip"]
            if c.node.params["recip"].size > 1:  # one reciprocal per output position
                c.func = "avgpool2d_recip_map"
        else:
            c.func = "avgpool2d_shift"
            c.ints.append(("shift", int(c.node.attrs["shift"])))

    def resources(self, r: LayerCost) -> None:
        a, sh = r.node.attrs, r.sh
        s_t = a["sum_type"]
        kh, kw = pair(a["kernel"])
        r.lut += ceil_div(r.cost.additions, r.ii) * s_t.width
        r.ff += sh.parallel * s_t.width
        r.depth = 2 + clog2(kh * kw)
        if r.cost.mult_ops:
            r.impl, r.dpm, lut_pm, mlat = mult_model(r.node, "recip", s_t, a["recip_type"],
                                                     False, r.ports)
            r.multipliers = min(sh.parallel, r.cost.mult_ops)
            r.dsp += r.multipliers * r.dpm
            r.lut += r.multipliers * lut_pm
            r.depth += mlat


@hls_rule("flatten")
class _Flatten(HLSRule):
    """No layer: parallel arrays are NCHW-flat (the output aliases the input's array); streamed,
    a process gathers the tensor into one NCHW pixel."""

    aliases = True
    whole_tensor = True

    def shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        return Shape(0, 0, 0, 0, {})

    def stream_shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        in_pixels = edge_pixels(graph.edges[node.inputs[0]].shape)[1]
        return Shape(1, 1, in_pixels, 1, {}, None, 1)

    def resources(self, r: LayerCost) -> None:
        if not r.stream:
            r.notes.append("no hardware: arrays are NCHW-flat")
            return
        r.notes.append("gathers the tensor into one NCHW pixel")
        r.mem.add(_out_size(r.graph, r.node), r.out_t.width, 1)


# ====================================================================== binarized
class _Binary(HLSRule):
    """binary_dense / binary_conv2d: XNOR-popcount on packed weight bits, optionally scaled."""

    counts_macs = True

    @staticmethod
    def dot_type(node: Node) -> FixedType:
        """The XNOR-popcount dot's type (the scale multiplies it)."""
        db = int(node.attrs["fan_in"]).bit_length() + 1
        return FixedType(db, db)

    def typedefs(self, node: Node) -> list[tuple[str, FixedType, str]]:
        return [*khot_typedefs(node),
                ("word", WORD_T, f"{WORD_BITS} packed weight bits (1 <-> +1)"),
                ("dot", self.dot_type(node), "the XNOR-popcount dot in [-fan_in, fan_in]")]

    def constants(self, node: Node) -> list[Const]:
        out = [Const("wbits", pack_bits(node.params["weight"]), WORD_T,
                     f"[out][words of {WORD_BITS}]: bit i % {WORD_BITS} of word "
                     f"i / {WORD_BITS} is (weight i == +1), i over the flattened row", "word")]
        if "scale" in node.params:
            out += _const_or_digits(node, "scale", "[out]")
        return out

    def config(self, c: LayerConfig) -> None:
        for m, k in (("acc_t", "acc"), ("dot_t", "dot"), ("word_t", "word")):
            c.typ(m, k)
        n_words = -(-int(c.node.attrs["fan_in"]) // WORD_BITS)
        red, outer = self.geometry(c, n_words)
        c.ints += [("n_words", n_words), ("red_unroll", red), ("out_unroll", outer)]
        c.kinds = ["wbits"]
        if "scale" in c.node.params:
            c.typ("scale_t", "scale")
            if c.khot("scale"):
                c.func, c.kinds = f"{c.node.op}_khot", ["wbits", "scale_dsign", "scale_dshift"]
            else:
                c.func, c.kinds = f"{c.node.op}_scale", ["wbits", "scale"]

    def geometry(self, c: LayerConfig, n_words: int) -> tuple[int, int]:
        """Add the layer's size ints; return its (red_unroll, out_unroll) over the words."""
        raise NotImplementedError

    def casts(self, node: Node) -> bool:
        return "scale" in node.params  # else the output is the integer dot itself

    def resources(self, r: LayerCost) -> None:
        node, sh, a = r.node, r.sh, r.node.attrs
        r.impl = "xnor"
        r.weight_t = "binary {-1,+1}"
        r.lut += 2 * ceil_div(r.cost.xnor_bits, r.ii)
        r.ff += sh.write_lanes * r.acc_w
        r.depth = 1 + clog2(int(a["fan_in"])) + 2
        w = node.params["weight"]
        if r.cii > 1:
            r.mem.add(int(w.size), 1, min(int(w.size), sh.parallel))
        if "scale" in node.params:
            s_t = a["scale_type"]
            s_impl, s_dpm, s_lut, _ = mult_model(node, "scale", self.dot_type(node), s_t, False,
                                                 r.ports)
            if s_impl in ("dsp", "lut"):
                r.multipliers = min(sh.write_lanes, r.cost.mult_ops)
                r.dsp += r.multipliers * s_dpm
                r.lut += r.multipliers * s_lut
            r.lut += ceil_div(max(r.cost.additions - r.cost.xnor_bits, 0), r.ii) * r.acc_w
            r.mem.add(int(node.params["scale"].size), s_t.width, 1)
        r.notes.append("XNOR-popcount, 0 DSP" if r.multipliers == 0 else "XNOR-popcount + scale")


@hls_rule("binary_dense")
class _BinaryDense(_Binary):
    whole_tensor = True

    def geometry(self, c: LayerConfig, n_words: int) -> tuple[int, int]:
        c.ints += [("n_in", int(c.node.attrs["fan_in"])), ("n_out", c.out.shape[0])]
        return fold(n_words, c.out.shape[0], c.reuse)

    shape = staticmethod(_dense_shape)  # type: ignore[assignment]


@hls_rule("binary_conv2d")
class _BinaryConv2d(_Binary):
    def geometry(self, c: LayerConfig, n_words: int) -> tuple[int, int]:
        groups = int(c.node.attrs["groups"])
        c.ints += [*c.window(), ("groups", groups), ("fan_in", int(c.node.attrs["fan_in"]))]
        return fold(n_words, c.out.shape[0] // groups, c.reuse)

    shape = staticmethod(_conv_shape)  # type: ignore[assignment]
    stream_shape = staticmethod(_conv_stream_shape)  # type: ignore[assignment]


# ====================================================================== thresholds
class _ThresholdRule(HLSRule):
    """Comparisons on the input's grid: ``w`` LUTs each, thresholds in a ROM."""

    key: ClassVar[str]

    def shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        return _Elementwise.shape(self, graph, node, reuse)  # type: ignore[arg-type]

    def resources(self, r: LayerCost) -> None:
        r.lut += ceil_div(r.cost.comparisons, r.ii) * r.x_t.width
        r.mem.add(int(r.node.params[self.key].size), r.node.attrs["threshold_type"].width, 1)

    def sizes(self, c: LayerConfig) -> tuple[int, int]:
        """(channels, values in the loop) of the config."""
        ch = c.x.shape[0]
        n_in = ch if c.stream else int(math.prod(c.x.shape))
        c.typ("threshold_t", "threshold")
        c.ints += [("n_chan", ch), ("n_spatial", n_in // ch)]
        return ch, n_in


@hls_rule("threshold")
class _Threshold(_ThresholdRule):
    key = "threshold"

    def typedefs(self, node: Node) -> list[tuple[str, FixedType, str]]:
        return [("dir", DIR_T, "threshold direction (+1: x >= T, -1: x <= T)")]

    def constants(self, node: Node) -> list[Const]:
        return [Const("threshold", node.params["threshold"], node.attrs["threshold_type"],
                      "[channel]"),
                Const("direction", node.params["direction"], DIR_T, "[channel]", "dir")]

    def config(self, c: LayerConfig) -> None:
        ch, n_in = self.sizes(c)
        c.typ("dir_t", "dir")
        c.kinds = ["threshold", "direction"]
        c.ints += [("unroll", unroll(n_in // ch, c.reuse)),
                   ("chan_unroll", unroll(ch, c.reuse) if c.stream else 1)]

    def stream_shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        return _BatchNorm.stream_shape(self, graph, node, reuse)  # type: ignore[arg-type]


@hls_rule("thermometer")
class _Thermometer(_ThresholdRule):
    key = "thresholds"

    def constants(self, node: Node) -> list[Const]:
        return [Const("thresholds", node.params["thresholds"], node.attrs["threshold_type"],
                      "[level]", "threshold")]

    def config(self, c: LayerConfig) -> None:
        _, n_in = self.sizes(c)
        levels = int(c.node.attrs["levels"])
        c.kinds = ["thresholds"]
        c.ints += [("levels", levels), ("unroll", unroll(n_in, c.reuse, levels))]

    def stream_shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        return _Elementwise.stream_shape(self, graph, node, reuse)  # type: ignore[arg-type]


# ====================================================================== multithreshold
@hls_rule("multithreshold")
class _MultiThreshold(_ThresholdRule):
    """K comparisons per value (``w`` LUTs each), a popcount, and ``count * out_scale +
    out_bias`` by constants (no multiplier); thresholds [C, K] in a ROM."""

    key = "thresholds"

    def typedefs(self, node: Node) -> list[tuple[str, FixedType, str]]:
        return _Threshold.typedefs(self, node)  # type: ignore[arg-type]

    def constants(self, node: Node) -> list[Const]:
        return [Const("thresholds", node.params["thresholds"], node.attrs["threshold_type"],
                      "[channel][level]", "threshold"),
                Const("direction", node.params["direction"], DIR_T, "[channel]", "dir")]

    def config(self, c: LayerConfig) -> None:
        ch, n_in = self.sizes(c)
        a = c.node.attrs
        out_t = c.out.type
        shift = out_t.frac_bits - int(a["out_frac"])  # the levels on the output's grid
        c.typ("dir_t", "dir")
        c.kinds = ["thresholds", "direction"]
        c.ints += [("levels", int(c.node.params["thresholds"].shape[1])),
                   ("out_scale_raw", int(a["out_scale"]) << shift),
                   ("out_bias_raw", int(a["out_bias"]) << shift),
                   ("unroll", unroll(n_in // ch, c.reuse)),
                   ("chan_unroll", unroll(ch, c.reuse) if c.stream else 1)]

    def stream_shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        return _BatchNorm.stream_shape(self, graph, node, reuse)  # type: ignore[arg-type]
# ====================================================================== concat, mul, upsample, pad
# (ops-graph)
def _values(c: LayerConfig, edge: str) -> int:
    """The values of ``edge`` one call of the layer's array function sees: the whole tensor
    (parallel) or one pixel's channels (stream)."""
    shape = c.graph.edges[edge].shape
    return edge_pixels(shape)[0] if c.stream else int(math.prod(shape))


def _two_inputs(c: LayerConfig) -> None:
    node = c.node
    c.types = [("in0_t", c.tname[node.inputs[0]]), ("in1_t", c.tname[node.inputs[1]]),
               ("out_t", c.tname[node.output])]
    c.typ("acc_t", "acc")


@hls_rule("concat")
class _Concat(_Elementwise):
    """Channel concatenation: the inputs' values one after the other (NCHW arrays: a's block,
    then b's; streamed: per pixel, a's channels then b's), each through ``acc_t`` (exact), then
    the cast. No arithmetic: wiring, and the cast's logic when it rounds or saturates."""

    def config(self, c: LayerConfig) -> None:
        _two_inputs(c)
        n0, n1 = _values(c, c.node.inputs[0]), _values(c, c.node.inputs[1])
        c.ints += [("n0", n0), ("n1", n1), ("unroll", unroll(n0 + n1, c.reuse))]


@hls_rule("mul")
class _Mul(_Elementwise):
    """Element-wise product on the exact product type ``acc_t``, then the cast; a per-channel
    gate (``[C]`` / ``[C, 1, 1]`` over ``[C, H, W]``) is read at ``i / spatial`` (streamed: the
    gate's one pixel is read once and applied to every pixel of the first input)."""

    def config(self, c: LayerConfig) -> None:
        _two_inputs(c)
        x, g = (c.graph.edges[e] for e in c.node.inputs)
        gate = tuple(g.shape) != tuple(x.shape)
        spatial = 1 if c.stream or not gate else int(math.prod(x.shape[1:]))
        c.ints += [("n", c.n), ("spatial", spatial), ("gate_once", int(gate and c.stream)),
                   ("unroll", unroll(c.n, c.reuse))]

    def resources(self, r: LayerCost) -> None:
        g_t = r.graph.edges[r.node.inputs[1]].type
        r.impl, r.dpm, lut_pm, mlat = mult_model(r.node, "gate", r.x_t, g_t, False, r.ports)
        r.multipliers = r.sh.parallel
        r.dsp += r.multipliers * r.dpm
        r.lut += r.multipliers * lut_pm
        r.depth = 2 + mlat
        r.notes.append(f"{r.x_t.width}x{g_t.width}-bit products of two tensors")


class _Move(HLSRule):
    """upsample / pad: values moved, never computed; one output pixel (all its channels) per
    cycle when streamed, ``unroll`` values per cycle in parallel."""

    def shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        return _Elementwise.shape(self, graph, node, reuse)  # type: ignore[arg-type]

    def stream_shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        chan, pixels, _, _, _ = _pixels(graph, node)
        return Shape(chan, pixels, 1, chan, {}, 1, pixels)

    def sizes(self, c: LayerConfig) -> None:
        (ch, h, w), (_, oh, ow) = c.x.shape, c.out.shape
        n = int(math.prod(c.out.shape))
        c.types = [("in_t", c.tname[c.x.name]), ("out_t", c.tname[c.node.output])]
        c.ints += [("chan", ch), ("in_h", h), ("in_w", w), ("out_h", oh), ("out_w", ow),
                   ("unroll", unroll(n, c.reuse))]


@hls_rule("upsample")
class _Upsample(_Move):
    def config(self, c: LayerConfig) -> None:
        self.sizes(c)
        sh, sw = pair(c.node.attrs["scale"])
        c.ints += [("scale_h", sh), ("scale_w", sw)]

    def resources(self, r: LayerCost) -> None:
        if r.stream:  # one input row of pixels, repeated scale_h times
            ch, _, w = r.graph.edges[r.node.inputs[0]].shape
            r.mem.add(int(w), int(ch) * r.x_t.width, 1)
            r.notes.append("a row buffer of one input row")


@hls_rule("pad")
class _Pad(_Move):
    def config(self, c: LayerConfig) -> None:
        self.sizes(c)
        top, left, _, _ = pads4(c.node)
        c.ints += [("pad_top", top), ("pad_left", left),
                   ("value_raw", pad_raw(c.node, c.x.type))]


# ====================================================================== ops-window
# exact piecewise-linear activations
@hls_rule("leaky_relu")
class _LeakyReLU(_Compare):
    """A comparison and a select; the shift is wiring (a reinterpretation)."""

    def config(self, c: LayerConfig) -> None:
        c.typ("acc_t", "acc")
        c.ints += [("n", c.n), ("unroll", unroll(c.n, c.reuse))]


@hls_rule("hardsigmoid", "hardswish")
class _HardGate(_Elementwise):
    """x * c (+ x * gate for hardswish): constant multipliers, then compare and select."""

    def typedefs(self, node: Node) -> list[tuple[str, FixedType, str]]:
        return [("gate", node.attrs["gate_type"], "clamp(x * scale + 1/2, 0, 1), exact")]

    def config(self, c: LayerConfig) -> None:
        for m, k in (("scale_t", "scale"), ("gate_t", "gate"), ("acc_t", "acc")):
            c.typ(m, k)
        c.ints += [("n", c.n), ("scale_raw", int(c.node.attrs["scale_raw"])),
                   ("unroll", unroll(c.n, c.reuse))]

    def resources(self, r: LayerCost) -> None:
        a = r.node.attrs
        g_t = a["gate_type"]
        per_lane = [(r.x_t, a["scale_type"])]
        if r.node.op == "hardswish":
            per_lane.append((r.x_t, g_t))
        lanes = ceil_div(r.cost.additions, r.ii)  # one + 1/2 per element
        for x_t, c_t in per_lane:
            impl, dpm, lut_pm, mlat = mult_model(r.node, "scale", x_t, c_t, False, r.ports)
            r.multipliers += lanes
            r.dsp += lanes * dpm
            r.lut += lanes * lut_pm
            r.depth += mlat
            r.impl, r.dpm = impl, dpm
        r.lut += lanes * (g_t.width + 2 * 2 * g_t.width)  # the + 1/2 and the two clamps
        r.weight_t = a["scale_type"].cpp()


@hls_rule("conv1d")
class _Conv1d(_WeightLayer):
    """conv1d is conv2d's layer over a height-1 input ([C, L] is [C][1][L] in NCHW order and,
    streamed, L pixels of C values): the same C++ functions, with in_h = out_h = k_h = 1."""

    layout = "[out_c][in_c/groups][k]"

    def config(self, c: LayerConfig) -> None:
        a, (cin, length), (cout, out_len) = c.node.attrs, c.x.shape, c.out.shape
        _, cin_g, k = c.node.params["weight"].shape
        groups = int(a["groups"])
        red, outer = fold(cin_g * k, cout // groups if c.stream else out_len, c.reuse)
        c.ints += [("in_c", cin), ("in_h", 1), ("in_w", length), ("out_c", cout), ("out_h", 1),
                   ("out_w", out_len), ("k_h", 1), ("k_w", k), ("stride_h", 1),
                   ("stride_w", int(a["stride"])), ("pad_h", 0), ("pad_w", int(a["padding"])),
                   ("dil_h", 1), ("dil_w", int(a["dilation"])), ("groups", groups),
                   ("red_unroll", red), ("out_unroll", outer)]
        self.weight_config(c, "conv2d")

    shape = staticmethod(_conv_shape)  # type: ignore[assignment]
    stream_shape = staticmethod(_conv_stream_shape)  # type: ignore[assignment]


# ====================================================================== table activations
def _rom_copies(r: LayerCost, n: int, width: int, readers: int) -> None:
    """A ROM of ``n`` words read by ``readers`` lanes: one dual-port copy per two lanes."""
    for _ in range(ceil_div(max(readers, 1), 2)):
        r.mem.add(n, width, 1)


@hls_rule("sigmoid", "tanh", "exp")
class _TableLookup(_Elementwise):
    """One ROM read per value (``table_lookup``): the table over every input code."""

    def typedefs(self, node: Node) -> list[tuple[str, FixedType, str]]:
        return [("table", node.attrs["table_type"], f"{node.op} table values (the output type)")]

    def constants(self, node: Node) -> list[Const]:
        return [Const("table", node.params["table"], node.attrs["table_type"],
                      "[2**W_in], indexed by the input's raw bits (unsigned)")]

    def config(self, c: LayerConfig) -> None:
        c.func, c.kinds = "table_lookup", ["table"]
        c.ints += [("n", c.n), ("n_table", 1 << c.node.attrs["index_type"].width),
                   ("unroll", unroll(c.n, c.reuse))]

    def resources(self, r: LayerCost) -> None:
        t = r.node.params["table"]
        _rom_copies(r, int(t.size), r.node.attrs["table_type"].width, r.sh.parallel)
        r.depth = 2
        r.notes.append(f"{int(t.size)}-entry ROM ({t.size * r.node.attrs['table_type'].width} "
                       "bits) per two lanes")


@hls_rule("softmax")
class _Softmax(HLSRule):
    """max, exp ROM, exact sum, reciprocal ROM, one product per value (``softmax``)."""

    def typedefs(self, node: Node) -> list[tuple[str, FixedType, str]]:
        a = node.attrs
        return [("diff", a["diff_type"], "softmax max - x (exact)"),
                ("exp", a["exp_type"], "softmax exp table values")]

    def constants(self, node: Node) -> list[Const]:
        p, a = node.params, node.attrs
        return [Const("exp_table", p["exp_table"], a["exp_type"],
                      "[2**W_diff]: exp(-d), indexed by the raw bits of d = max - x", "exp"),
                Const("recip_table", p["recip_table"], a["recip_type"],
                      "[2**W_sum]: 1/s, indexed by the raw bits of the sum s", "recip")]

    def config(self, c: LayerConfig) -> None:
        for m, k in (("diff_t", "diff"), ("exp_t", "exp"), ("sum_t", "sum"),
                     ("recip_t", "recip"), ("acc_t", "acc")):
            c.typ(m, k)
        ch, n = c.x.shape[0], c.n
        c.func, c.kinds = "softmax", ["exp_table", "recip_table"]
        c.ints += [("n_chan", ch), ("n_spatial", n // ch),
                   ("n_exp", int(c.node.params["exp_table"].size)),
                   ("n_recip", int(c.node.params["recip_table"].size)),
                   ("unroll", unroll(ch, c.reuse))]

    def shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        ch = int(graph.edges[node.inputs[0]].shape[0])
        u = unroll(ch, reuse)
        positions = _out_size(graph, node) // ch
        return Shape(u, positions, 2 * ch + ceil_div(ch, u), u, {node.inputs[0]: 1})

    def stream_shape(self, graph: Graph, node: Node, reuse: int) -> Shape:
        chan, pixels, _, _, _ = _pixels(graph, node)
        u = unroll(chan, reuse)
        return Shape(u, pixels, 2 * chan + ceil_div(chan, u), u, {}, None, pixels)

    def resources(self, r: LayerCost) -> None:
        a, p, sh = r.node.attrs, r.node.params, r.sh
        e_t, r_t = a["exp_type"], a["recip_type"]
        _rom_copies(r, int(p["exp_table"].size), e_t.width, 1)
        _rom_copies(r, int(p["recip_table"].size), r_t.width, 1)
        r.lut += 2 * r.x_t.width + a["diff_type"].width + a["sum_type"].width  # max, d, sum
        r.impl, r.dpm, lut_pm, mlat = mult_model(r.node, "recip", e_t, r_t, False, r.ports)
        r.multipliers = sh.parallel
        r.dsp += r.multipliers * r.dpm
        r.lut += r.multipliers * lut_pm
        ch = int(r.graph.edges[r.node.inputs[0]].shape[0])
        r.ff += (r.out_t.width + e_t.width) * ch
        r.depth = 4 + mlat
        r.notes.append(f"exp ROM {p['exp_table'].size}x{e_t.width} bits, reciprocal ROM "
                       f"{p['recip_table'].size}x{r_t.width} bits")


#: IR ops the HLS backend implements (those with a rule).
SUPPORTED_OPS: tuple[str, ...] = tuple(RULES)
