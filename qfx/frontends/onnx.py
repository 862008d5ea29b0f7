"""``import_onnx``: QONNX graphs with power-of-two scales (Brevitas, qfx, FINN exports) as a
frozen qfx graph, so they get qfx's exact executor, HLS export and bit-exact C-sim.

The import computes what the QONNX graph *means* (real-valued arithmetic between ``Quant``
nodes), which is what the qonnx executor computes in float32 whenever float32 is exact. Every
``Quant`` on a tensor becomes a qfx cast: folded into the node that produces the tensor when
that node has no other consumer, else a standalone cast node (IR op ``input``, whose
semantics are "cast the incoming value"). ``Quant`` on an initializer quantizes the constant
once, exactly.

Mapping of a ``Quant(x, scale=2**e, zero_point=0, bitwidth=W, signed, narrow,
rounding_mode)``: ``ap_(u)fixed<W, W+e>``; rounding ROUND/HALF_EVEN -> AP_RND_CONV, FLOOR ->
AP_TRN, DOWN -> AP_TRN_ZERO, HALF_UP -> AP_RND_INF, HALF_DOWN -> AP_RND_ZERO; overflow AP_SAT,
or AP_SAT_SYM when signed and narrow. The two-node patterns :mod:`qonnx_export` writes for
AP_RND, AP_RND_MIN_INF, AP_RND_INF and AP_RND_ZERO are recognised and read back as one cast.

Binarized networks (the patterns :mod:`qonnx_export` writes): ``BipolarQuant`` with scale 1 on
a constant gives +-1 weights, and MatMul / Conv of such weights on a -1/+1 tensor becomes
``binary_dense`` / ``binary_conv2d`` (a preceding ``Pad(constant -1)`` is its -1 padding);
with a power-of-two scale the weights are ordinary fixed-point weights. ``BipolarQuant`` (scale
1) of ``x - T``, ``T - x`` or ``(x - T) * D`` (D = +-1 per channel) becomes one ``threshold``,
of any other computed tensor a threshold at 0; ``Unsqueeze -> Sub -> BipolarQuant -> Reshape``
becomes a ``thermometer``.

Thresholds (see the block before :func:`import_onnx_model`): FINN/QONNX ``MultiThreshold``
becomes a ``multithreshold``; a float ``BatchNormalization`` [-> ``Relu``] read only by a
``Quant`` becomes a ``multithreshold`` onto the Quant's format, and one read only by a
``BipolarQuant`` (scale 1) a ``threshold``, with integer thresholds searched on onnxruntime's
float32 execution of the source's own BatchNormalization node and checked on every input code.

Shape ops (``Reshape``, ``Transpose``, ``Unsqueeze``, ``Squeeze``, ``Flatten``, ``Identity``)
whose data input is a constant or a quantized constant are evaluated before any rule sees
them (Brevitas' quantized BatchNorm reshapes its quantized scale; TorchScript exports of
bias-free linear layers transpose the quantized weight). ``GlobalAveragePool`` and
``ReduceMean`` over H and W are one average pool over the plane (exact when H*W is a power of
two), ``GlobalMaxPool`` and ``ReduceMax`` over H and W one max pool; QONNX ``Trunc``
(Brevitas' TruncAvgPool2d) is the saturating cast it computes. Graph outputs that are
constants (a Brevitas QuantTensor's scale, zero point and bit width in TorchScript exports)
are dropped; ``outputs=`` picks outputs by name. A graph input read by several ``Quant``
nodes arrives on the finest of their grids and each reader is its own cast from there.

Float constants that no ``Quant`` quantizes (Brevitas' default float biases, BatchNorm
shifts) are taken exactly, as the smallest fixed-point format holding their float32 values
(when that needs more than 53 bits, rounded half to even onto float32's 24-bit precision of
the largest value, a declared format of at most 26 bits); this is said once per node (a log
warning, naming the format).
What is compared: qfx computes with the exact values, i.e. what the source model computes in
exact arithmetic (== Brevitas run in float64, tested); the source itself adds them in
float32, which rounds to 24 significant bits, so the two agree after the next ``Quant`` unless
that rounding moves a value across one of its rounding boundaries, and an unquantized output
differs by a few float32 ulps (the check reports them). The import-time check
(``check`` samples through qonnx's executor, or onnxruntime for standard ONNX, against the
imported graph, ``==``) reports the first output that differs, with counts and the largest
difference, in ``graph.meta["source_check"]`` and the log.

Refused, with the node name and the reason: non-power-of-two or non-constant scales,
non-zero zero points, per-channel activation scales, non-integer bit widths, CEIL/UP rounding
where it would round, unsigned narrow ranges, 1-bit signed (bipolar) Quant on tensors (write
BipolarQuant), BipolarQuant on a computed tensor with a scale other than 1, Pad other than a
binary conv's -1, a float BatchNormalization not read by one Quant / BipolarQuant,
AveragePool with a window divisor that is not a power of two, LeakyRelu with a slope that is
not, and any operator without an exact qfx equivalent.

Rule families in their own modules (registered into ``IMPORTERS``): :mod:`.onnx_window` (1-D
Conv, LeakyRelu, HardSigmoid, HardSwish, AveragePool with pads / ceil_mode /
count_include_pad, the folding of ``F.pad``'s constant shape arithmetic) and
:mod:`.onnx_table` (qfx's own QONNX softmax).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from qfx.fixed.fixed_type import MAX_WIDTH, FixedType, cast_needs
from qfx.fixed.kernels import FLOAT64_EXACT_BITS
from qfx.fixed.tables import check_table_width, function_table
from qfx.ir.builder import GraphBuilder
from qfx.ir.graph import Edge, Graph, Node, sanitize_identifier
from qfx.ir.ops import spec
from qfx.ir.ops.pooling import AvgPool2d
from qfx.ir.prune import prune_channels
from qfx.ir.verify import verify

__all__ = ["IMPORTERS", "OnnxImportError", "SourceCheck", "check_against_source", "import_onnx",
           "import_onnx_model"]

_log = logging.getLogger(__name__)


class OnnxImportError(ValueError):
    """An ONNX file cannot be imported exactly; the message names the node and the reason."""


_QUANT_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general")
#: the operators read from the QONNX domains (every other op must be a standard ONNX one)
_QUANT_OPS = ("Quant", "BipolarQuant", "Trunc", "MultiThreshold")
_MODE_TO_AP = {"ROUND": "RND_CONV", "HALF_EVEN": "RND_CONV", "FLOOR": "TRN", "DOWN": "TRN_ZERO",
               "HALF_UP": "RND_INF", "HALF_DOWN": "RND_ZERO"}
# (first Quant's mode, second Quant's mode) of the two-Quant tie patterns
_PAIRS = {("CEIL", "FLOOR"): "RND_MIN_INF", ("DOWN", "UP"): "RND_INF", ("UP", "DOWN"): "RND_ZERO"}


@dataclass
class _Value:
    """A dynamic tensor: its IR edge; ``pending`` names the IR node whose output cast can still
    be chosen (its edge currently has the exact, loss-free type)."""

    edge: str
    pending: Node | None = None


def _pow2_exponent(scale: np.ndarray, where: str) -> np.ndarray:
    """log2 of each (positive, power-of-two) scale, as integers."""
    s = np.asarray(scale, dtype=np.float64)
    if s.size == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise OnnxImportError(f"{where}: scales must be positive finite numbers, got {s}")
    mant, exp = np.frexp(s)
    if np.any(mant != 0.5):
        bad = s[mant != 0.5].ravel()[0]
        raise OnnxImportError(f"{where}: scale {float(bad)!r} is not a power of two; qfx formats "
                              "have "
                              "power-of-two LSBs only")
    return (exp - 1).astype(np.int64)


def _round_exact(y: np.ndarray, mode: str, where: str) -> np.ndarray:
    """qonnx's rounding functions, computed exactly on float64 values."""
    if mode in ("ROUND", "HALF_EVEN"):
        return np.round(y)
    if mode == "FLOOR":
        return np.floor(y)
    if mode == "CEIL":
        return np.ceil(y)
    if mode == "DOWN":
        return np.trunc(y)
    if mode == "UP":
        return np.sign(y) * np.ceil(np.abs(y))
    if mode in ("HALF_UP", "HALF_DOWN"):
        a = np.abs(y)
        n = np.floor(a)
        g = a - n
        inc = g >= 0.5 if mode == "HALF_UP" else g > 0.5
        return np.sign(y) * (n + inc)
    raise OnnxImportError(f"{where}: unknown rounding_mode {mode!r}")


def _exact_fixed(values: np.ndarray, where: str) -> tuple[np.ndarray, FixedType]:
    """Raw integers and the smallest format holding the float constant ``values`` exactly."""
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise OnnxImportError(f"{where}: constant has non-finite values")
    nz = v[v != 0]
    if nz.size == 0:
        return np.zeros(v.shape, dtype=np.int64), FixedType(1, 1, False)
    mant, exp = np.frexp(nz)
    m = (mant * 2.0**53).astype(np.int64)
    tz = np.array([(int(k) & -int(k)).bit_length() - 1 for k in m.ravel()], dtype=np.int64)
    frac = int(-(exp.astype(np.int64) - 53 + tz.reshape(exp.shape)).min())
    raw_f = np.ldexp(v, frac)
    if np.abs(raw_f).max() >= 2.0**(MAX_WIDTH - 1):
        raise OnnxImportError(f"{where}: the float constant needs more than {MAX_WIDTH} bits to "
                              "be held exactly as fixed point")
    raw = raw_f.astype(np.int64)
    t = FixedType.for_raw_range(int(raw.min()), int(raw.max()), frac)
    if t.width > FLOAT64_EXACT_BITS:
        raise OnnxImportError(f"{where}: the float constant needs a {t.width}-bit fixed-point "
                              "format to be exact (quantize it with a Quant node)")
    return raw, t


#: the constants that are added (``_Importer.fixed``'s ``what``): a float one too wide to hold
#: exactly is rounded to float32's precision instead of refused
_ADDITIVE = ("bias", "addend", "operand")


def _float32_grid(values: np.ndarray) -> tuple[np.ndarray, FixedType]:
    """A float constant too wide to hold exactly, rounded (half to even) onto the grid of
    float32's 24 significant bits of its largest magnitude: the declared format then has at
    most 26 bits, and no value moves by more than half a float32 step of the largest."""
    v = np.asarray(values, dtype=np.float64)
    top = float(np.abs(v).max())
    frac = 24 - math.frexp(top)[1] if top else 0
    raw = np.round(np.ldexp(v, frac)).astype(np.int64)
    return raw, FixedType.for_raw_range(int(min(raw.min(), 0)), int(max(raw.max(), 0)), frac)


def _align(raws: list[tuple[np.ndarray, FixedType]]) -> tuple[list[np.ndarray], int]:
    """Put several fixed-point constants on their finest common grid."""
    frac = max(t.frac_bits for _, t in raws)
    return [r << (frac - t.frac_bits) for r, t in raws], frac


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pair_from(values: Any, default: int, n: int = 2) -> list[int]:
    if values is None:
        return [default] * n
    return [int(v) for v in values]


class _Importer:
    def __init__(self, model: onnx.ModelProto, source: str,
                 outputs: Sequence[str] | None = None) -> None:
        self.model, self.source = model, source
        self.picked = None if outputs is None else list(outputs)
        g = model.graph
        self.consts: dict[str, np.ndarray] = {}
        for t in g.initializer:
            arr = numpy_helper.to_array(t)
            self.consts[t.name] = arr.astype(np.float64) if arr.dtype.kind == "f" else arr
        self.qconsts: dict[str, tuple[np.ndarray, FixedType]] = {}
        self.values: dict[str, _Value] = {}
        self.edges: dict[str, Edge] = {}
        self.nodes: list[Node] = []
        self.inputs: list[str] = []
        self.build = GraphBuilder()  # unique names and binary-edge tracking
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self.graph_outputs = {o.name for o in g.output}
        self.skip: set[int] = set()
        self.node_index = {id(n): i for i, n in enumerate(g.node)}
        #: constants made by a BipolarQuant with unit scale (+-1 weights of binary layers)
        self.bipolar: set[str] = set()
        #: graph input edge -> the cast nodes reading it (input_formats gives it its format)
        self.readers: dict[str, list[Node]] = {}
        self.floats_said: set[str] = set()  # nodes whose float constants were announced
        #: Pad(-1) outputs awaiting their binary Conv: tensor -> (input, [ph, pw], Pad node)
        self.pads: dict[str, tuple[_Value, list[int], onnx.NodeProto]] = {}

    # ------------------------------------------------------------------ helpers
    def where(self, node: onnx.NodeProto) -> str:
        return f"node {node.name or node.output[0]!r} ({node.op_type})"

    def fresh(self, base: str) -> str:
        return self.build.name(base)

    def size_acc(self, onnx_node: onnx.NodeProto, op: str, inputs: list[_Value],
                 attrs: dict[str, Any], params: dict[str, np.ndarray]) -> FixedType:
        """The exact accumulator of an IR node (the op's own rule), named in errors."""
        node = Node("", op, [v.edge for v in inputs], "", attrs, params)
        try:
            return spec(op).size_accumulator(node, [self.type(v) for v in inputs],
                                             self.where(onnx_node))
        except ValueError as err:
            raise OnnxImportError(str(err)) from None

    def shape(self, v: _Value) -> tuple[int, ...]:
        return self.edges[v.edge].shape

    def type(self, v: _Value) -> FixedType:
        return self.edges[v.edge].type

    def dyn(self, node: onnx.NodeProto, i: int = 0, *, raw_input: bool = False) -> _Value:
        """The computed tensor feeding input ``i`` (graph inputs only through a Quant)."""
        name = node.input[i] if i < len(node.input) else ""
        if name in self.values:
            v = self.values[name]
            if not raw_input and v.edge in self.inputs and \
                    self.edges[v.edge].type.width == MAX_WIDTH:
                raise OnnxImportError(f"{self.where(node)}: graph input {name!r} must be "
                                      "quantized by a Quant node before any arithmetic")
            return v
        if name in self.consts or name in self.qconsts:
            raise OnnxImportError(f"{self.where(node)}: input {i} ({name!r}) must be a computed "
                                  "tensor, not a constant")
        raise OnnxImportError(f"{self.where(node)}: input {i} ({name!r}) is not computed by any "
                              "earlier node")

    def const(self, node: onnx.NodeProto, i: int) -> np.ndarray | None:
        if i >= len(node.input) or not node.input[i]:
            return None
        name = node.input[i]
        if name in self.qconsts:
            raw, t = self.qconsts[name]
            return np.ldexp(raw.astype(np.float64), -t.frac_bits)
        if name in self.consts:
            return self.consts[name]
        raise OnnxImportError(f"{self.where(node)}: input {i} ({name!r}) must be a constant "
                              "(an initializer, a Constant or a Quant of one)")

    def fixed(self, node: onnx.NodeProto, i: int, what: str) -> tuple[np.ndarray, FixedType]:
        name = node.input[i]
        if name in self.qconsts:
            return self.qconsts[name]
        if name in self.consts:
            values = self.consts[name]
            try:
                raw, t = _exact_fixed(values, f"{self.where(node)} {what}")
            except OnnxImportError:  # too wide to hold exactly: an additive constant (a float
                # bias or shift) gets float32's precision; a factor or weight is refused
                if what not in _ADDITIVE or \
                        not np.all(np.isfinite(np.asarray(values, dtype=np.float64))):
                    raise
                raw, t = _float32_grid(values)
                self.say_float(node, what, t, rounded=True)
                return raw, t
            self.say_float(node, what, t)
            return raw, t
        raise OnnxImportError(f"{self.where(node)}: the {what} ({name!r}) must be a constant")

    def say_float(self, node: onnx.NodeProto, what: str, t: FixedType, *,
                  rounded: bool = False) -> None:
        """Say once per node that an unquantized float constant (e.g. Brevitas' default float
        bias) is taken exactly (or, when that needs more than 53 bits, rounded to float32's
        precision of its largest value): qfx computes with that value, the source adds it in
        float32 (see the module doc)."""
        key = node.name or node.output[0]
        if key in self.floats_said:
            return
        self.floats_said.add(key)
        how = (f"rounded (half to even) to {t.cpp()}, float32's precision of its largest "
               "value, as holding it exactly needs more than "
               f"{FLOAT64_EXACT_BITS} bits") if rounded else f"imported exactly as {t.cpp()}"
        _log.warning("%s: the float %s (not quantized by a Quant) is %s; qfx computes with "
                     "this value, the source model in float32", self.where(node), what, how)

    def add_node(self, onnx_node: onnx.NodeProto, op: str, inputs: list[_Value],
                 out_type: FixedType, out_shape: tuple[int, ...],
                 attrs: dict[str, Any] | None = None, params: dict[str, np.ndarray] | None = None,
                 *, pending: bool = True) -> _Value:
        """Append an IR node (named like its output edge, as qfx.freeze does)."""
        name = self.fresh(onnx_node.output[0])
        self.edges[name] = Edge(name, tuple(int(d) for d in out_shape), out_type)
        node = Node(name, op, [v.edge for v in inputs], name, attrs or {}, params or {},
                    f"onnx {onnx_node.op_type} {onnx_node.name or onnx_node.output[0]}")
        try:
            node.validate()
        except ValueError as err:
            raise OnnxImportError(f"{self.where(onnx_node)}: {err}") from None
        self.nodes.append(node)
        self.build.track(node)
        v = _Value(name, node if pending else None)
        self.values[onnx_node.output[0]] = v
        return v

    def drop(self, node: Node) -> None:
        """Remove a pending node again (its only consumer is being merged into it)."""
        self.nodes.remove(node)
        self.edges.pop(node.output)
        self.build.names.discard(node.output)

    def is_binary(self, v: _Value) -> bool:
        return self.build.is_binary(v.edge)

    def skip_node(self, node: onnx.NodeProto) -> None:
        self.skip.add(self.node_index[id(node)])

    def single_consumer(self, tensor: str) -> onnx.NodeProto | None:
        users = self.consumers.get(tensor, [])
        if len(users) != 1 or tensor in self.graph_outputs:
            return None
        return users[0]

    # ------------------------------------------------------------------ Quant
    def quant_params(self, node: onnx.NodeProto) -> tuple[np.ndarray, int, bool, bool, str]:
        where = self.where(node)
        if len(node.input) != 4:
            raise OnnxImportError(f"{where}: Quant takes (x, scale, zero_point, bit_width)")
        a = _attrs(node)
        mode = a.get("rounding_mode", b"ROUND")
        mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
        try:
            scale, zp, bits = (self.const(node, i) for i in (1, 2, 3))
        except OnnxImportError as err:
            raise OnnxImportError(f"{err} (scale, zero point and bit width must be "
                                  "constants)") from None
        if np.any(np.asarray(zp) != 0):
            raise OnnxImportError(f"{where}: zero point {np.asarray(zp).ravel()[:4]} is not 0; "
                                  "fixed-point formats have no offset")
        bits_a = np.asarray(bits, dtype=np.float64)
        if bits_a.size != 1 or bits_a.ravel()[0] != int(bits_a.ravel()[0]) or \
                not 1 <= bits_a.ravel()[0] <= FLOAT64_EXACT_BITS:
            raise OnnxImportError(f"{where}: bit width must be one integer between 1 and "
                                  f"{FLOAT64_EXACT_BITS}, got {bits_a.ravel()[:4]}")
        exps = _pow2_exponent(scale, where)
        return exps, int(bits_a.ravel()[0]), bool(a.get("signed", 1)), bool(a.get("narrow", 0)), \
            mode

    def quant_const(self, node: onnx.NodeProto) -> None:
        """A Quant of a constant: quantize once, exactly, and remember raw + format."""
        where = self.where(node)
        exps, bits, signed, narrow, mode = self.quant_params(node)
        w = np.asarray(self.const(node, 0), dtype=np.float64)
        if not np.all(np.isfinite(w)):
            raise OnnxImportError(f"{where}: the constant has non-finite values")
        try:
            e = np.broadcast_to(exps, np.broadcast_shapes(w.shape, exps.shape))
        except ValueError:
            raise OnnxImportError(f"{where}: scale shape {exps.shape} does not broadcast "
                                  f"against the constant {w.shape}") from None
        if e.shape != w.shape:
            raise OnnxImportError(f"{where}: the scale would change the constant's shape")
        y = np.ldexp(w, -e)
        if bits == 1 and signed:
            q = np.where(y >= 0, 1.0, -1.0)  # qonnx's bipolar reading of 1-bit signed
        else:
            lo = -(2 ** (bits - 1)) + (1 if narrow else 0) if signed else 0
            hi = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1 - (1 if narrow else 0)
            q = _round_exact(np.clip(y, lo, hi), mode, where)
        frac = int(-e.min())
        if bits + int((e + frac).max()) > MAX_WIDTH:
            raise OnnxImportError(f"{where}: the per-channel scales span too many binary points "
                                  f"for one {MAX_WIDTH}-bit format")
        raw = q.astype(np.int64) << (e + frac)
        if exps.size == 1 and not (bits == 1 and signed):
            t = FixedType(bits, bits - frac, signed)
        else:
            t = FixedType.for_raw_range(int(raw.min()), int(raw.max()), frac)
        self.qconsts[node.output[0]] = (raw, t)

    def cast_type(self, node: onnx.NodeProto, src: FixedType | None,
                  params: tuple[np.ndarray, int, bool, bool, str] | None = None,
                  rounding: str | None = None) -> FixedType:
        where = self.where(node)
        exps, bits, signed, narrow, mode = params or self.quant_params(node)
        if exps.size != 1:
            raise OnnxImportError(f"{where}: per-channel scales on a computed tensor have no "
                                  "single fixed-point format")
        if bits == 1 and signed:
            raise OnnxImportError(f"{where}: a 1-bit signed Quant is bipolar (+-1); write it "
                                  "as BipolarQuant (scale 1), which imports as a threshold")
        e = int(exps.ravel()[0])
        overflow = "SAT_SYM" if narrow and signed else "SAT"
        t = FixedType(bits, bits + e, signed, "TRN", overflow)
        if rounding is None:
            rounding = _MODE_TO_AP.get(mode)
            if rounding is None:
                if mode not in ("CEIL", "UP"):
                    raise OnnxImportError(f"{where}: unknown rounding_mode {mode!r}")
                if cast_needs(src, t)[0]:
                    raise OnnxImportError(f"{where}: rounding_mode {mode} has no ap_fixed "
                                          "equivalent and this Quant does round")
                rounding = "TRN"  # nothing is rounded: any mode gives the same values
        t = t.replace(rounding=rounding)
        if narrow and not signed and cast_needs(src, t)[1]:
            raise OnnxImportError(f"{where}: an unsigned narrow range (max 2**W-2) has no "
                                  "ap_fixed equivalent")
        return t

    def quant_dynamic(self, node: onnx.NodeProto, idx: int) -> None:
        x = self.dyn(node, raw_input=True)
        src = None if x.edge in self.inputs else self.type(x)
        t, chain = self.cast_chain(node, src)
        for n in chain[1:]:
            self.skip_node(n)
        self.cast(x, t, node, chain[-1].output[0])

    def cast_chain(self, node: onnx.NodeProto, src: FixedType | None
                   ) -> tuple[FixedType, list[onnx.NodeProto]]:
        """The one cast computed by the Quant ``node`` (from values of ``src``, None: any
        float) and the nodes that compute it: the Quant alone, or one of the exact two-step tie
        patterns written by qonnx_export (Quant -> Quant, Quant -> Add(half LSB) -> Quant)."""
        params = self.quant_params(node)
        nxt = self.single_consumer(node.output[0])
        if nxt is not None and nxt.op_type == "Quant" and nxt.domain in _QUANT_DOMAINS:
            t = self.pattern(params, node, nxt, src, add=False)
            if t is not None:
                return t, [node, nxt]
        elif nxt is not None and nxt.op_type == "Add" and params[4] == "FLOOR":
            other = [i for i in nxt.input if i != node.output[0]]
            if len(other) == 1 and other[0] in self.consts:
                q2 = self.single_consumer(nxt.output[0])
                half = self.consts[other[0]]
                e1 = params[0].ravel()[0] if params[0].size == 1 else None
                if q2 is not None and q2.op_type == "Quant" and q2.domain in _QUANT_DOMAINS and \
                        e1 is not None and np.asarray(half).size == 1 and \
                        float(np.asarray(half).ravel()[0]) == math.ldexp(1.0, int(e1)):
                    t = self.pattern(params, node, q2, src, add=True)
                    if t is not None:
                        return t, [node, nxt, q2]
        return self.cast_type(node, src, params), [node]

    def pattern(self, p1: tuple, q1: onnx.NodeProto, q2: onnx.NodeProto, src: FixedType | None,
                *, add: bool) -> FixedType | None:
        """The single ap_fixed cast equal to Quant q1 (half-LSB grid) followed by q2, if any."""
        try:
            p2 = self.quant_params(q2)
        except OnnxImportError:
            return None
        (e1, b1, s1, n1, m1), (e2, b2, s2, _, m2) = p1, p2
        if e1.size != 1 or e2.size != 1 or n1 or s1 != s2 or b1 != b2 + 1 or \
                int(e1.ravel()[0]) != int(e2.ravel()[0]) - 1:
            return None
        mode = "RND" if add and (m1, m2) == ("FLOOR", "FLOOR") else \
            (None if add else _PAIRS.get((m1, m2)))
        if mode is None:
            return None
        return self.cast_type(q2, src, p2, rounding=mode)

    def cast(self, x: _Value, t: FixedType, node: onnx.NodeProto, out_tensor: str) -> _Value:
        """Apply the cast to ``t``: fold it into x's producer when possible, else a cast node."""
        producer = x.pending
        if producer is not None and self.single_consumer(node.input[0]) is node:
            # rename the loss-free edge after the Quant's output and give it the cast's format
            old = producer.output
            new = self.fresh(out_tensor)
            self.edges[new] = Edge(new, self.edges.pop(old).shape, t)
            self.build.names.discard(old)
            producer.output = producer.name = new
            self.values[out_tensor] = _Value(new, None)
            return self.values[out_tensor]
        if x.edge in self.inputs:  # the input's own format is decided once all readers are
            self.readers.setdefault(x.edge, [])  # known (input_formats)
        fake = onnx.helper.make_node("Quant", [node.input[0]], [out_tensor],
                                     name=node.name or out_tensor)
        v = self.add_node(fake, "input", [x], t, self.shape(x), pending=False)
        if x.edge in self.inputs:
            self.readers[x.edge].append(self.nodes[-1])
        return v

    def input_formats(self) -> None:
        """Give every graph input its format from the casts that read it. One format: the
        input arrives in it (the cast is then the identity). Several different ones (e.g. two
        Brevitas quantizers on one input): the input arrives on the finest grid among them,
        covering every range, with the finest reader's rounding; one explicit cast node takes
        it there from the raw value (as the testbench and the driver do), and every reader
        casts from that node, so the executor, the HLS design and C-sim compute the same.
        The finest reader is then its source quantizer exactly; a coarser one equals its
        source quantizer on inputs on that grid (a raw value off it is rounded twice)."""
        for edge in self.inputs:
            readers = self.readers.get(edge, [])
            if not readers:
                raise OnnxImportError(f"graph input {edge!r} is not quantized by a Quant node; "
                                      "qfx needs every input's fixed-point format")
            types = [self.edges[n.output].type for n in readers]
            shape = self.edges[edge].shape
            if all(t == types[0] for t in types):
                self.edges[edge] = Edge(edge, shape, types[0])
                continue
            fine = max(types, key=lambda t: t.frac_bits)
            frac = fine.frac_bits
            lo = min(t.raw_min << (frac - t.frac_bits) for t in types)
            hi = max(t.raw_max << (frac - t.frac_bits) for t in types)
            t_in = FixedType.for_raw_range(lo, hi, frac).replace(rounding=fine.rounding,
                                                                  overflow="SAT")
            self.edges[edge] = Edge(edge, shape, t_in)
            name = self.fresh(f"{edge}_in")
            self.edges[name] = Edge(name, shape, t_in)
            node = Node(name, "input", [edge], name, {}, {},
                        f"onnx graph input {edge} (read by {len(readers)} Quant nodes)")
            for n in readers:
                n.inputs = [name]
            self.nodes.insert(0, node)

    # ------------------------------------------------------------------ constant folding
    def is_const(self, tensor: str) -> bool:
        return tensor in self.consts or tensor in self.qconsts

    def fold_constant(self, node: onnx.NodeProto) -> bool:
        """Evaluate a shape op (``_FOLD``) whose data input is a constant or a quantized
        constant, before any node rule sees it: the result is again a (quantized) constant,
        raw integers and format unchanged (shape ops move values, never change them). False
        when the node is not such an op (its rule then runs)."""
        fold = _FOLD.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        if fold is None or not node.input or not self.is_const(node.input[0]) or \
                any(i and not self.is_const(i) for i in node.input[1:]):
            return False
        src, out = node.input[0], node.output[0]
        arr = self.qconsts[src][0] if src in self.qconsts else self.consts[src]
        try:
            folded = np.asarray(fold(self, node, np.asarray(arr)))
        except (ValueError, IndexError, TypeError) as err:
            raise OnnxImportError(f"{self.where(node)}: cannot apply it to the constant "
                                  f"{src!r} of shape {np.shape(arr)}: {err}") from None
        if src in self.qconsts:
            self.qconsts[out] = (folded, self.qconsts[src][1])
        else:
            self.consts[out] = folded
        if src in self.bipolar:
            self.bipolar.add(out)
        return True

    # ------------------------------------------------------------------ outputs
    def output_names(self) -> list[str]:
        """The graph outputs to import: the ones the user picked (``outputs``), else every
        computed one. Outputs that are constants (the scale, zero point and bit width a
        TorchScript export of a Brevitas QuantTensor adds) are dropped."""
        names = [o.name for o in self.model.graph.output]
        computed = [o for o in names if o in self.values]
        if self.picked is None:
            for o in names:
                if o not in self.values and not self.is_const(o):
                    raise OnnxImportError(f"graph output {o!r} is not a computed tensor")
            if not computed:
                raise OnnxImportError(f"{self.source}: no graph output is a computed tensor "
                                      f"(outputs: {', '.join(names)})")
            return computed
        for o in self.picked:
            if o not in computed:
                raise OnnxImportError(f"{self.source}: {o!r} is not a computed graph output; "
                                      f"available: {', '.join(computed) or 'none'}")
        if not self.picked:
            raise OnnxImportError(f"{self.source}: pick at least one output; available: "
                                  f"{', '.join(computed)}")
        return list(self.picked)

    # ------------------------------------------------------------------ run
    def run(self) -> Graph:
        g = self.model.graph
        init_names = set(self.consts)
        for vi in g.input:
            if vi.name in init_names:
                continue
            dims = vi.type.tensor_type.shape.dim
            shape = []
            for d in list(dims)[1:]:
                if not d.HasField("dim_value"):
                    raise OnnxImportError(f"graph input {vi.name!r}: every dimension after the "
                                          "batch must be a fixed size")
                shape.append(int(d.dim_value))
            if len(dims) < 2:
                raise OnnxImportError(f"graph input {vi.name!r} needs a batch dimension and at "
                                      "least one feature dimension")
            name = self.fresh(vi.name)
            self.inputs.append(name)
            self.edges[name] = Edge(name, tuple(shape), FixedType(MAX_WIDTH, 1))
            self.values[vi.name] = _Value(name)
        if not self.inputs:
            raise OnnxImportError("the model has no (non-initializer) graph input")
        nodes = list(g.node)
        for idx, node in enumerate(nodes):
            if idx in self.skip or self.fold_constant(node):
                continue
            handler = IMPORTERS.get(node.op_type)
            if node.domain not in (_QUANT_DOMAINS if node.op_type in _QUANT_OPS else
                                   ("", "ai.onnx")):
                handler = None
            if handler is None:
                raise OnnxImportError(
                    f"{self.where(node)}: operator {node.domain + '.' if node.domain else ''}"
                    f"{node.op_type} has no exact qfx equivalent (supported: "
                    f"{', '.join(sorted(IMPORTERS))})")
            handler(self, node, idx)
        outputs = [self.values[o].edge for o in self.output_names()]
        self.input_formats()
        graph = Graph(inputs=list(self.inputs), outputs=outputs,
                      meta={"model": sanitize_identifier(g.name or "onnx_model"),
                            "source": self.source})
        used = set(self.inputs) | {n.output for n in self.nodes}
        for name, e in self.edges.items():
            if name in used:
                graph.add_edge(e)
        for n in self.nodes:
            graph.add_node(n)
        try:
            return verify(graph)
        except ValueError as err:
            raise OnnxImportError(str(err)) from None


# ---------------------------------------------------------------------- op handlers
def _quant(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    x = node.input[0]
    if x in imp.consts or x in imp.qconsts:
        imp.quant_const(node)
    else:
        imp.quant_dynamic(node, idx)


def _unit_scale(imp: _Importer, node: onnx.NodeProto) -> bool:
    """Whether a BipolarQuant's scale is the constant 1 (raises when it is not a constant)."""
    if len(node.input) != 2:
        raise OnnxImportError(f"{imp.where(node)}: BipolarQuant takes (x, scale)")
    try:
        scale = np.asarray(imp.const(node, 1), dtype=np.float64)
    except OnnxImportError as err:
        raise OnnxImportError(f"{err} (BipolarQuant's scale must be a constant)") from None
    return scale.size > 0 and bool(np.all(scale == 1.0))


def _bipolar(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    where = imp.where(node)
    if node.input[0] in imp.consts:  # +-1 weights (times power-of-two scales)
        unit = _unit_scale(imp, node)
        scale = imp.const(node, 1)
        e = _pow2_exponent(scale, where)
        w = imp.consts[node.input[0]]
        if not np.all(np.isfinite(w)):
            raise OnnxImportError(f"{where}: the constant has non-finite values")
        try:
            e = np.broadcast_to(e, w.shape)
        except ValueError:
            raise OnnxImportError(f"{where}: scale shape {e.shape} does not broadcast against "
                                  f"the constant {w.shape}") from None
        frac = int(-e.min())
        raw = np.where(w >= 0, 1, -1).astype(np.int64) << (e + frac)
        imp.qconsts[node.output[0]] = (raw, FixedType.for_raw_range(int(raw.min()),
                                                                    int(raw.max()), frac))
        if unit:
            imp.bipolar.add(node.output[0])
        return
    if node.input[0] in imp.qconsts:
        raise OnnxImportError(f"{where}: BipolarQuant of a Quant-ed constant is not supported "
                              "(apply it to the float initializer)")
    # binary activations: +1 where x >= 0, i.e. a threshold at 0
    if not _unit_scale(imp, node):
        raise OnnxImportError(f"{where}: BipolarQuant on a computed tensor must have scale 1: "
                              "qfx's binary activations are exactly -1/+1 (scale the next "
                              "layer instead)")
    x = imp.dyn(node)
    t = np.zeros(imp.shape(x)[0], dtype=np.int64)
    _threshold_node(imp, node, x, t, np.ones_like(t))


_BINARY = FixedType(2, 2)  # the type of every binary (-1/+1) edge


def _threshold_node(imp: _Importer, node: onnx.NodeProto, x: _Value, t_raw: np.ndarray,
                    direction: np.ndarray) -> _Value:
    """An IR threshold (raw thresholds on x's grid, clamped one step outside its range)."""
    x_t = imp.type(x)
    t_raw = np.clip(t_raw, x_t.raw_min - 1, x_t.raw_max + 1).astype(np.int64)
    t_t = FixedType.for_raw_range(int(t_raw.min()), int(t_raw.max()), x_t.frac_bits)
    return imp.add_node(node, "threshold", [x], _BINARY, imp.shape(x), {"threshold_type": t_t},
                        {"threshold": t_raw, "direction": direction.astype(np.int64)},
                        pending=False)


def _per_channel(imp: _Importer, x: _Value, value: np.ndarray) -> np.ndarray | None:
    """The float constant as one value per channel of x, or None if it is not one."""
    shape = imp.shape(x)
    arr = np.asarray(value, dtype=np.float64)
    try:
        full = np.broadcast_to(arr, (1, *shape))
    except ValueError:
        return None
    if full.shape != (1, *shape):
        return None
    per = full[0].reshape(shape[0], -1)
    if not np.all(per == per[:, :1]) or not np.all(np.isfinite(per)):
        return None
    return per[:, 0].copy()


def _threshold_chain(imp: _Importer, node: onnx.NodeProto) -> bool:
    """Sub(x, T) | Sub(T, x) | Add(x, -T), optionally then Mul(D) with D = +-1 per channel,
    then BipolarQuant(scale 1): one IR threshold (+1 where D * (x - T) >= 0). False when the
    nodes do not form this pattern (they are then imported one by one, also exactly)."""
    dyn = [i for i in range(2) if node.input[i] in imp.values]
    if len(dyn) != 1 or not any(node.input[1 - dyn[0]] in c for c in (imp.consts, imp.qconsts)):
        return False
    xi = dyn[0]
    c = np.asarray(imp.const(node, 1 - xi), dtype=np.float64)
    t, d0 = (-c, 1.0) if node.op_type == "Add" else (c, 1.0 if xi == 0 else -1.0)
    chain, nxt = [], imp.single_consumer(node.output[0])
    d = None
    if nxt is not None and nxt.op_type == "Mul" and nxt.domain in ("", "ai.onnx") and \
            len(nxt.input) == 2:
        other = [i for i in nxt.input if i != node.output[0]]
        if len(other) != 1 or other[0] not in imp.consts:
            return False
        d = imp.consts[other[0]]
        chain.append(nxt)
        nxt = imp.single_consumer(nxt.output[0])
    if nxt is None or nxt.op_type != "BipolarQuant" or nxt.domain not in _QUANT_DOMAINS or \
            nxt.input[0] != (chain[-1] if chain else node).output[0] or not _unit_scale(imp, nxt):
        return False
    x = imp.dyn(node, xi)
    t_vec = _per_channel(imp, x, t)
    d_vec = _per_channel(imp, x, d0 * (np.ones(1) if d is None else np.asarray(d)))
    if t_vec is None or d_vec is None or not np.all(np.isin(d_vec, (-1.0, 1.0))):
        return False
    # a >= T <=> a >= ceil(T * 2**F);  a <= T <=> a <= floor(T * 2**F)  (a: raw on x's grid)
    scaled = np.ldexp(t_vec, imp.type(x).frac_bits)
    raw = np.where(d_vec > 0, np.ceil(scaled), np.floor(scaled))
    x_t = imp.type(x)
    raw = np.clip(raw, x_t.raw_min - 1, x_t.raw_max + 1).astype(np.int64)
    for n in [*chain, nxt]:
        imp.skip_node(n)
    _threshold_node(imp, nxt, x, raw, d_vec.astype(np.int64))
    return True


def _thermometer(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """Unsqueeze(x, 2) -> Sub(thresholds along axis 2) -> BipolarQuant(scale 1) -> Reshape to
    (batch, C * L, ...): the IR thermometer. Any other Unsqueeze is refused."""
    where = imp.where(node)
    x = imp.dyn(node)
    shape = imp.shape(x)
    axes = _attrs(node).get("axes")
    if axes is None and len(node.input) > 1:
        axes = imp.const(node, 1)
    axes = None if axes is None else [int(a) for a in np.asarray(axes).ravel()]
    sub = imp.single_consumer(node.output[0])
    bq = imp.single_consumer(sub.output[0]) if sub is not None else None
    rs = imp.single_consumer(bq.output[0]) if bq is not None else None
    rank = len(shape) + 2
    if axes not in ([2], [2 - rank]) or sub is None or sub.op_type != "Sub" or \
            sub.input[0] != node.output[0] or sub.input[1] not in imp.consts or \
            bq is None or bq.op_type != "BipolarQuant" or bq.domain not in _QUANT_DOMAINS or \
            rs is None or rs.op_type != "Reshape" or rs.input[0] != bq.output[0]:
        raise OnnxImportError(f"{where}: Unsqueeze is only supported as the start of a "
                              "thermometer encoding: Unsqueeze(x, axes=[2]) -> Sub(thresholds) "
                              "-> BipolarQuant -> Reshape(batch, C * levels, ...)")
    if not _unit_scale(imp, bq):
        raise OnnxImportError(f"{imp.where(bq)}: BipolarQuant on a computed tensor must have "
                              "scale 1: qfx's binary activations are exactly -1/+1")
    t = np.asarray(imp.consts[sub.input[1]], dtype=np.float64)
    if t.ndim > rank:
        raise OnnxImportError(f"{imp.where(sub)}: thresholds of shape {t.shape} do not fit")
    t = t.reshape((1,) * (rank - t.ndim) + t.shape)
    levels = t.shape[2]
    try:
        full = np.broadcast_to(t, (1, shape[0], levels, *shape[1:]))
    except ValueError:
        raise OnnxImportError(f"{imp.where(sub)}: thresholds of shape {t.shape} do not "
                              f"broadcast against (batch, {shape[0]}, levels, ...)") from None
    per = np.moveaxis(full[0], 1, -1).reshape(-1, levels)
    if not np.all(per == per[:1]) or not np.all(np.isfinite(per)):
        raise OnnxImportError(f"{imp.where(sub)}: thermometer thresholds must be the same for "
                              "every channel and position and finite")
    x_t = imp.type(x)
    raw = np.ceil(np.ldexp(per[0], x_t.frac_bits))  # x >= t <=> raw >= ceil(t * 2**F)
    raw = np.clip(raw, x_t.raw_min, x_t.raw_max + 1).astype(np.int64)
    if np.any(np.diff(raw) < 0):
        raise OnnxImportError(f"{imp.where(sub)}: thermometer thresholds must be "
                              "non-decreasing")
    target = [int(v) for v in np.asarray(imp.const(rs, 1)).ravel()]
    want = [shape[0] * levels, *shape[1:]]
    if len(target) != len(want) + 1 or target[1:] != want or target[0] < -1:
        raise OnnxImportError(f"{imp.where(rs)}: expected a reshape to (batch, "
                              f"{', '.join(map(str, want))}), got {target}")
    for n in (sub, bq, rs):
        imp.skip_node(n)
    t_t = FixedType.for_raw_range(int(raw.min()), int(raw.max()), x_t.frac_bits)
    imp.add_node(rs, "thermometer", [x], _BINARY, tuple(want),
                 {"threshold_type": t_t, "levels": levels}, {"thresholds": raw}, pending=False)


def _pad(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """Pad(-1) of a binary tensor into a binary Conv: the -1 padding of binary_conv2d."""
    where = imp.where(node)
    x = imp.dyn(node)
    mode = _attrs(node).get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    value = imp.const(node, 2) if len(node.input) > 2 and node.input[2] else np.zeros(1)
    pads = [int(v) for v in np.asarray(imp.const(node, 1)).ravel()]
    conv = imp.single_consumer(node.output[0])
    if _general_pad(imp, node, x, mode, value, pads, conv):
        return
    if (len(node.input) > 3 and node.input[3]) or mode != "constant" or len(pads) != 8 or \
            np.asarray(value).size != 1 or float(np.asarray(value).ravel()[0]) != -1.0 or \
            any(pads[i] for i in (0, 1, 4, 5)) or pads[2] != pads[6] or pads[3] != pads[7] or \
            min(pads) < 0 or not imp.is_binary(x) or conv is None or conv.op_type != "Conv" or \
            conv.input[0] != node.output[0]:
        raise OnnxImportError(f"{where}: Pad is only supported as the -1 padding of a binary "
                              "convolution: constant -1, symmetric on H and W, of a -1/+1 "
                              "tensor, read by one Conv with BipolarQuant weights")
    imp.pads[node.output[0]] = (x, [pads[2], pads[3]], node)


def _sub(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    if _threshold_chain(imp, node):
        return
    x, ci = _split_const(imp, node)
    raw, t = imp.fixed(node, ci, "operand")
    vec = _channel_vector(imp, node, x, raw, "operand")
    if ci == 1:  # x - c
        neg = -vec
        _batchnorm_node(imp, node, x, (np.ones_like(vec), _ZERO),
                        (neg, FixedType.for_raw_range(int(min(neg.min(), 0)),
                                                      int(max(neg.max(), 0)), t.frac_bits)))
    else:  # c - x
        _batchnorm_node(imp, node, x, (-np.ones_like(vec), FixedType(1, 1, True)),
                        (vec, t.storage()))


def _constant(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    a = _attrs(node)
    if "value" not in a:
        raise OnnxImportError(f"{imp.where(node)}: only Constant(value=tensor) is supported")
    arr = numpy_helper.to_array(a["value"])
    imp.consts[node.output[0]] = arr.astype(np.float64) if arr.dtype.kind == "f" else arr


def _alias(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        raise OnnxImportError(f"{imp.where(node)}: Dropout's mask output is not supported")
    src = node.input[0]
    if src in imp.consts:
        imp.consts[node.output[0]] = imp.consts[src]
    elif src in imp.qconsts:
        imp.qconsts[node.output[0]] = imp.qconsts[src]
    else:
        imp.values[node.output[0]] = imp.dyn(node)


def _weighted(imp: _Importer, node: onnx.NodeProto, x: _Value, op: str, w_raw: np.ndarray,
              w_t: FixedType, bias: tuple[np.ndarray, FixedType] | None,
              out_shape: tuple[int, ...], attrs: dict[str, Any]) -> None:
    where = imp.where(node)
    for t, what in ((w_t, "weight"), (bias[1] if bias else None, "bias")):
        if t is not None and t.width > MAX_WIDTH:
            raise OnnxImportError(f"{where}: {what} format {t.cpp()} is too wide")
    params = {"weight": np.ascontiguousarray(w_raw, dtype=np.int64)}
    attrs = dict(attrs, weight_type=w_t)
    if bias is not None:
        b_raw, b_t = bias
        b_raw = np.ascontiguousarray(b_raw, dtype=np.int64).reshape(-1)
        if b_raw.shape != (w_raw.shape[0],):
            raise OnnxImportError(f"{where}: bias shape {b_raw.shape} does not match "
                                  f"{w_raw.shape[0]} outputs")
        params["bias"], attrs["bias_type"] = b_raw, b_t
    acc = attrs["acc_type"] = imp.size_acc(node, op, [x], attrs, params)
    imp.add_node(node, op, [x], acc, out_shape, attrs, params)


def _gemm(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    where = imp.where(node)
    x = imp.dyn(node)
    if len(imp.shape(x)) != 1:
        raise OnnxImportError(f"{where}: qfx dense layers take (batch, features) inputs, got "
                              f"shape {imp.shape(x)}")
    w_raw, w_t = imp.fixed(node, 1, "weight")
    a = _attrs(node)
    if node.op_type == "Gemm":
        if a.get("transA", 0) or float(a.get("alpha", 1.0)) != 1.0 or \
                float(a.get("beta", 1.0)) != 1.0:
            raise OnnxImportError(f"{where}: only Gemm with transA=0, alpha=1, beta=1 is "
                                  "supported")
        w = w_raw if a.get("transB", 0) else w_raw.T
    else:
        w = w_raw.T
    if w.ndim != 2 or w.shape[1] != imp.shape(x)[0]:
        raise OnnxImportError(f"{where}: weight shape {w_raw.shape} does not fit "
                              f"{imp.shape(x)[0]} input features")
    bias = None
    if node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]:
        b_raw, b_t = imp.fixed(node, 2, "bias")
        if b_raw.size != w.shape[0]:
            raise OnnxImportError(f"{where}: bias of shape {b_raw.shape} must have one value "
                                  "per output")
        bias = (b_raw.reshape(-1), b_t)
    if bias is None and node.input[1] in imp.bipolar and imp.is_binary(x):
        _binary_layer(imp, node, x, "binary_dense", w, (w.shape[0],), {})
        return
    _weighted(imp, node, x, "dense", w, w_t, bias, (w.shape[0],), {})


def _binary_layer(imp: _Importer, node: onnx.NodeProto, x: _Value, op: str, w: np.ndarray,
                  out_shape: tuple[int, ...], attrs: dict[str, Any]) -> None:
    """+-1 weights on a -1/+1 tensor: the XNOR-popcount layer (output: the integer dots)."""
    n = int(np.prod(w.shape[1:]))
    acc = FixedType.for_raw_range(-n, n, 0)
    imp.add_node(node, op, [x], acc, out_shape, dict(attrs, fan_in=n, acc_type=acc),
                 {"weight": np.ascontiguousarray(w, dtype=np.int64)}, pending=False)


def _conv(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    where = imp.where(node)
    padded = imp.pads.pop(node.input[0], None)
    x = padded[0] if padded is not None else imp.dyn(node)
    if len(imp.shape(x)) != 3:
        raise OnnxImportError(f"{where}: only 2-D convolutions on (batch, C, H, W) tensors are "
                              "supported")
    w_raw, w_t = imp.fixed(node, 1, "weight")
    if w_raw.ndim != 4:
        raise OnnxImportError(f"{where}: weight must be 4-D, got {w_raw.shape}")
    a = _attrs(node)
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "VALID"):
        raise OnnxImportError(f"{where}: auto_pad={auto_pad} is not supported (give explicit "
                              "pads)")
    pads = _pair_from(a.get("pads"), 0, 4)
    binary = node.input[1] in imp.bipolar and imp.is_binary(x) and \
        not (len(node.input) > 2 and node.input[2])
    if padded is not None:
        if any(pads) or not binary:
            raise OnnxImportError(f"{imp.where(padded[2])}: a -1 Pad must feed a binary Conv "
                                  "(BipolarQuant weights with scale 1, no bias, no pads of its "
                                  f"own); {where} is not one")
        pads = padded[1] * 2
    if pads[0] != pads[2] or pads[1] != pads[3]:
        raise OnnxImportError(f"{where}: asymmetric pads {pads} are not supported")
    strides, dil = _pair_from(a.get("strides"), 1), _pair_from(a.get("dilations"), 1)
    groups = int(a.get("group", 1))
    cin, h, wd = imp.shape(x)
    cout, cin_g, kh, kw = w_raw.shape
    if "kernel_shape" in a and list(a["kernel_shape"]) != [kh, kw]:
        raise OnnxImportError(f"{where}: kernel_shape disagrees with the weight")
    if groups < 1 or cin % groups or cout % groups or cin_g * groups != cin:
        raise OnnxImportError(f"{where}: group={groups} does not fit {cin} input and {cout} "
                              "output channels")
    oh = (h + 2 * pads[0] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd + 2 * pads[1] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    if oh < 1 or ow < 1:
        raise OnnxImportError(f"{where}: empty output")
    bias = None
    if len(node.input) > 2 and node.input[2]:
        b_raw, b_t = imp.fixed(node, 2, "bias")
        bias = (b_raw.reshape(-1), b_t)
    conv_attrs = {"stride": strides, "padding": pads[:2], "dilation": dil, "groups": groups}
    if binary and (padded is not None or not any(pads)):
        _binary_layer(imp, node, x, "binary_conv2d", w_raw, (cout, oh, ow),
                      dict(conv_attrs, pad_value=-1))
        return
    _weighted(imp, node, x, "conv2d", w_raw, w_t, bias, (cout, oh, ow),
              {"stride": strides, "padding": pads[:2], "dilation": dil, "groups": groups})


def _channel_vector(imp: _Importer, node: onnx.NodeProto, x: _Value, raw: np.ndarray,
                    what: str) -> np.ndarray:
    """A constant that (with ONNX/numpy broadcasting) holds one value per channel of x."""
    shape = imp.shape(x)
    arr = np.asarray(raw)
    try:
        full = np.broadcast_to(arr, (1, *shape))
    except ValueError:
        full = None
    if full is None or full.shape != (1, *shape):
        raise OnnxImportError(f"{imp.where(node)}: the {what} constant of shape {arr.shape} "
                              f"does not broadcast against the tensor (batch, {shape})")
    per = full[0].reshape(shape[0], -1)
    vec = per[:, 0]
    if not np.all(per == vec[:, None]):
        raise OnnxImportError(f"{imp.where(node)}: the {what} constant varies along spatial "
                              "axes; qfx scales and shifts are per channel")
    return vec.astype(np.int64).copy()


def _batchnorm_node(imp: _Importer, node: onnx.NodeProto, x: _Value,
                    scale: tuple[np.ndarray, FixedType],
                    shift: tuple[np.ndarray, FixedType]) -> None:
    (s_raw, s_t), (h_raw, h_t) = scale, shift
    attrs: dict[str, Any] = {"scale_type": s_t, "shift_type": h_t}
    params = {"scale": s_raw, "shift": h_raw}
    acc = attrs["acc_type"] = imp.size_acc(node, "batchnorm", [x], attrs, params)
    imp.add_node(node, "batchnorm", [x], acc, imp.shape(x), attrs, params)


def _split_const(imp: _Importer, node: onnx.NodeProto) -> tuple[_Value, int]:
    """(computed operand, index of the constant operand) of a binary op."""
    dyn = [i for i in range(2) if node.input[i] in imp.values]
    if len(dyn) != 1:
        raise OnnxImportError(f"{imp.where(node)}: expected one computed and one constant "
                              "operand")
    return imp.dyn(node, dyn[0]), 1 - dyn[0]


_ZERO = FixedType(1, 1, False)  # holds 0 (and 1: the unit scale)


def _mul(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    if node.op_type == "Mul" and all(i in imp.values for i in node.input[:2]):
        _mul_tensors(imp, node)  # two computed tensors: the IR mul (ops-graph)
        return
    x, ci = _split_const(imp, node)
    raw, t = imp.fixed(node, ci, "factor")
    if node.op_type == "Div":
        if ci != 1:
            raise OnnxImportError(f"{imp.where(node)}: only division by a constant is supported")
        vals = np.ldexp(raw.astype(np.float64), -t.frac_bits)
        _pow2_exponent(np.abs(vals), f"{imp.where(node)} divisor")
        raw, t = _exact_fixed(1.0 / vals, imp.where(node))  # exact: powers of two
    s = _channel_vector(imp, node, x, raw, "factor")
    _batchnorm_node(imp, node, x, (s, t.storage()),
                    (np.zeros_like(s), _ZERO))


def _exact_acc(imp: _Importer, node: onnx.NodeProto, op: str, ins: list[_Value],
               result: str) -> FixedType:
    """The accumulator of ``op`` on ``ins`` by the op's own rule; refused when the exact
    ``result`` does not fit a double (the ONNX exports compute in float64)."""
    acc = imp.size_acc(node, op, ins, {}, {})
    if acc.width > FLOAT64_EXACT_BITS:
        raise OnnxImportError(f"{imp.where(node)}: the exact {result} needs {acc.cpp()}, wider "
                              f"than {FLOAT64_EXACT_BITS} bits")
    return acc


def _add(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    where = imp.where(node)
    if all(i in imp.values for i in node.input[:2]):
        a, b = imp.dyn(node, 0), imp.dyn(node, 1)
        if imp.shape(a) != imp.shape(b):
            raise OnnxImportError(f"{where}: adds shapes {imp.shape(a)} and {imp.shape(b)} "
                                  "(broadcasting is not supported)")
        acc = _exact_acc(imp, node, "add", [a, b], "sum")
        imp.add_node(node, "add", [a, b], acc, imp.shape(a), {"acc_type": acc})
        return
    if _threshold_chain(imp, node):
        return
    x, ci = _split_const(imp, node)
    raw, t = imp.fixed(node, ci, "addend")
    vec = _channel_vector(imp, node, x, raw, "addend")
    p = x.pending
    if p is not None and p.op in ("dense", "conv2d", "batchnorm") and \
            imp.single_consumer(node.input[1 - ci]) is node:
        # fold the constant into the producer's bias/shift: the same exact sum, one node
        key, tkey = ("shift", "shift_type") if p.op == "batchnorm" else ("bias", "bias_type")
        old = (p.params[key], p.attrs[tkey]) if key in p.params else \
            (np.zeros(vec.size, dtype=np.int64), _ZERO)
        (o_raw, n_raw), frac = _align([old, (vec, t)])
        total = o_raw + n_raw
        total_t = FixedType.for_raw_range(int(min(total.min(), 0)), int(max(total.max(), 0)),
                                          frac)
        shape = imp.edges[p.output].shape
        imp.drop(p)
        src = _Value(p.inputs[0])
        if p.op == "batchnorm":
            _batchnorm_node(imp, node, src, (p.params["scale"], p.attrs["scale_type"]),
                            (total, total_t))
        else:
            attrs = {k: v for k, v in p.attrs.items()
                     if k not in ("weight_type", "bias_type", "acc_type")}
            _weighted(imp, node, src, p.op, p.params["weight"], p.attrs["weight_type"],
                      (total, total_t), shape, attrs)
        return
    _batchnorm_node(imp, node, x, (np.ones_like(vec), _ZERO),
                    (vec, t.storage()))


def _relu(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    x = imp.dyn(node)
    imp.add_node(node, "relu", [x], imp.type(x), imp.shape(x))


def _clip(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    x = imp.dyn(node)
    x_t = imp.type(x)
    a = _attrs(node)
    bounds = []
    for i, key, default in ((1, "min", x_t.raw_min), (2, "max", x_t.raw_max)):
        v = imp.const(node, i) if len(node.input) > i and node.input[i] else a.get(key)
        if v is None:
            bounds.append((default, x_t.frac_bits))
        else:
            raw, t = _exact_fixed(np.asarray(v, dtype=np.float64).reshape(-1)[:1],
                                  f"{imp.where(node)} {key}")
            bounds.append((int(raw[0]), t.frac_bits))
    frac = max(x_t.frac_bits, bounds[0][1], bounds[1][1])
    lo, hi = (r << (frac - f) for r, f in bounds)
    if lo > hi:
        raise OnnxImportError(f"{imp.where(node)}: min > max")
    shift = frac - x_t.frac_bits
    clamp_t = FixedType.for_raw_range(min(lo, x_t.raw_min << shift),
                                      max(hi, x_t.raw_max << shift), frac)
    imp.add_node(node, "hardtanh", [x], clamp_t, imp.shape(x),
                 {"min_raw": lo, "max_raw": hi, "clamp_type": clamp_t})


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:  # torch: the last window must start inside
        out -= 1
    return out


def _maxpool(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    where = imp.where(node)
    x = imp.dyn(node)
    if len(imp.shape(x)) != 3:
        raise OnnxImportError(f"{where}: only 2-D pooling on (batch, C, H, W) is supported")
    a = _attrs(node)
    if a.get("storage_order", 0) or (len(node.output) > 1 and node.output[1]):
        raise OnnxImportError(f"{where}: MaxPool indices/storage_order are not supported")
    auto_pad = a.get("auto_pad", b"NOTSET")
    if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) not in ("NOTSET",
                                                                                 "VALID"):
        raise OnnxImportError(f"{where}: auto_pad is not supported (give explicit pads)")
    k = [int(v) for v in a["kernel_shape"]]
    s = _pair_from(a.get("strides"), 1)
    d = _pair_from(a.get("dilations"), 1)
    pads = _pair_from(a.get("pads"), 0, 4)
    onnx_ceil = bool(a.get("ceil_mode", 0))
    c, h, w = imp.shape(x)
    out, ceil_modes = [], []
    for i, size in enumerate((h, w)):
        span = size + pads[i] + pads[i + 2] - d[i] * (k[i] - 1) - 1
        o = (-(-span // s[i]) if onnx_ceil else span // s[i]) + 1
        options = [cm for cm in (False, True)
                   if _pool_out(size, k[i], s[i], pads[i], d[i], cm) == o]
        if not options or pads[i] * 2 > k[i]:
            raise OnnxImportError(f"{where}: pads {pads} with ceil_mode={int(onnx_ceil)} give "
                                  "windows that qfx's max pool cannot reproduce")
        out.append(o)
        ceil_modes.append(options)
    common = [cm for cm in (False, True) if cm in ceil_modes[0] and cm in ceil_modes[1]]
    if not common:
        raise OnnxImportError(f"{where}: the two spatial axes need different ceil modes")
    imp.add_node(node, "maxpool2d", [x], imp.type(x), (c, out[0], out[1]),
                 {"kernel": k, "stride": s, "padding": pads[:2], "dilation": d,
                  "ceil_mode": common[0]}, pending=False)


def _avgpool_node(imp: _Importer, node: onnx.NodeProto, x: _Value, k: list[int],
                  s: list[int]) -> _Value:
    """An IR avgpool2d of x (window area a power of two: the division is exact)."""
    where = imp.where(node)
    c, h, w = imp.shape(x)
    area = k[0] * k[1]
    if area & (area - 1):
        raise OnnxImportError(f"{where}: the window area {area} is not a power of two, so "
                              "AveragePool's division is not exact in fixed point")
    shift = area.bit_length() - 1
    attrs: dict[str, Any] = {"kernel": k, "stride": s,
                             "sum_type": AvgPool2d.sum_type(imp.type(x), area)}
    attrs["shift"] = shift
    acc = imp.size_acc(node, "avgpool2d", [x], attrs, {})
    attrs = {"kernel": k, "stride": s, "sum_type": attrs["sum_type"], "acc_type": acc,
             "shift": shift}  # the file format keeps this attribute order
    oh, ow = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    return imp.add_node(node, "avgpool2d", [x], acc, (c, oh, ow), attrs)


def _flatten(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    where = imp.where(node)
    x = imp.dyn(node)
    shape = imp.shape(x)
    if node.op_type == "Flatten":
        if int(_attrs(node).get("axis", 1)) != 1:
            raise OnnxImportError(f"{where}: only Flatten(axis=1) is supported")
    else:
        target = imp.const(node, 1)
        n = math.prod(shape)
        t = [int(v) for v in np.asarray(target).ravel()]
        if len(t) != 2 or t[1] not in (-1, n) or t[0] not in (-1, 0, 1) and t[1] == -1:
            raise OnnxImportError(f"{where}: only reshapes to (batch, all features) are "
                                  f"supported, got {t}")
    if len(shape) == 1:
        imp.values[node.output[0]] = x
        return
    imp.add_node(node, "flatten", [x], imp.type(x), (math.prod(shape),), pending=False)


# ---------------------------------------------------------------------- Concat, Resize, Pad, Mul
# (ops-graph): the IR concat / upsample / pad / mul
def _concat(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """Concat on the channel axis of computed tensors: a chain of two-input concats (the inner
    ones exact, the last one's output cast by a following Quant)."""
    where = imp.where(node)
    xs = [imp.dyn(node, i) for i in range(len(node.input))]
    axis = int(_attrs(node).get("axis", 1))
    rank = len(imp.shape(xs[0])) + 1
    if axis not in (1, 1 - rank) or len(xs) < 2:
        raise OnnxImportError(f"{where}: only Concat of two or more tensors on the channel "
                              f"axis (axis=1) is supported, got axis={axis}")
    acc = xs[0]
    for i, x in enumerate(xs[1:], 1):
        a, b = imp.shape(acc), imp.shape(x)
        if a[1:] != b[1:] or len(a) != len(b):
            raise OnnxImportError(f"{where}: concatenates shapes {a} and {b} on the channel "
                                  "axis; every other dimension must be equal")
        acc_t = imp.size_acc(node, "concat", [acc, x], {}, {})
        last = i == len(xs) - 1
        step = node if last else onnx.helper.make_node(
            "Concat", [], [f"{node.output[0]}_part{i}"], name=f"{node.name}_part{i}")
        acc = imp.add_node(step, "concat", [acc, x], acc_t, (a[0] + b[0], *a[1:]),
                           {"acc_type": acc_t}, pending=last)


def _mul_tensors(imp: _Importer, node: onnx.NodeProto) -> None:
    where = imp.where(node)
    a, b = imp.dyn(node, 0), imp.dyn(node, 1)
    if math.prod(imp.shape(a)) < math.prod(imp.shape(b)):
        a, b = b, a  # the gate second (the product is symmetric)
    sa, sb = imp.shape(a), imp.shape(b)
    if sa != sb and not (len(sa) == 3 and sb == (sa[0], 1, 1)):
        raise OnnxImportError(f"{where}: multiplies shapes {sa} and {sb}; only equal shapes or "
                              "a per-channel (C, 1, 1) gate over (C, H, W)")
    acc = _exact_acc(imp, node, "mul", [a, b], "product")
    imp.add_node(node, "mul", [a, b], acc, sa, {"acc_type": acc})


#: Resize coordinate modes (and their nearest rounding) that read x[floor(o / s)] for an
#: integer factor s: asymmetric + floor (PyTorch's export), and half_pixel with either rounding
#: ((o + 1/2) / s - 1/2 is never a tie for an integer s).
_NEAREST_FLOOR = {("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"),
                  ("half_pixel", "round_prefer_ceil"), ("pytorch_half_pixel", "round_prefer_floor"),
                  ("pytorch_half_pixel", "round_prefer_ceil")}


def _text(a: dict[str, Any], key: str, default: str) -> str:
    v = a.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)


def _resize(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """Resize (nearest, integer factors on H and W) as the IR upsample."""
    where = imp.where(node)
    x = imp.dyn(node)
    a = _attrs(node)
    mode = _text(a, "mode", "nearest")
    coord = _text(a, "coordinate_transformation_mode", "half_pixel")
    near = _text(a, "nearest_mode", "round_prefer_floor")
    shape = imp.shape(x)
    if mode != "nearest" or (coord, near) not in _NEAREST_FLOOR or len(shape) != 3:
        raise OnnxImportError(f"{where}: only nearest Resize of (batch, C, H, W) with "
                              "coordinate_transformation_mode asymmetric + nearest_mode floor "
                              f"(or half_pixel) is supported, got {mode}/{coord}/{near}")
    scales, sizes = imp.const(node, 2), imp.const(node, 3)
    if sizes is not None and np.asarray(sizes).size:
        out = [int(v) for v in np.asarray(sizes).ravel()]
        factors = [o / i for o, i in zip(out, (1, *shape), strict=True)]
    elif scales is not None and np.asarray(scales).size:
        factors = [float(v) for v in np.asarray(scales).ravel()]
    else:
        raise OnnxImportError(f"{where}: Resize needs constant scales or sizes")
    if len(factors) != 4 or factors[:2] != [1.0, 1.0] or any(
            f != int(f) or f < 1 for f in factors[2:]):
        raise OnnxImportError(f"{where}: Resize factors {factors} are not integer upsampling "
                              "factors on H and W")
    sh, sw = int(factors[2]), int(factors[3])
    imp.add_node(node, "upsample", [x], imp.type(x), (shape[0], shape[1] * sh, shape[2] * sw),
                 {"scale": [sh, sw]}, pending=False)


def _general_pad(imp: _Importer, node: onnx.NodeProto, x: _Value, mode: str, value: Any,
                 pads: list[int], conv: onnx.NodeProto | None) -> bool:
    """A constant Pad of H and W that is not a binary convolution's -1 padding: the IR pad
    (its value must be one of the input format's values). False: leave it to the binary rule."""
    if imp.is_binary(x) and conv is not None and conv.op_type == "Conv":
        return False
    where = imp.where(node)
    if mode != "constant" or len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or \
            min(pads) < 0 or (len(node.input) > 3 and node.input[3]) or \
            np.asarray(value).size != 1 or len(imp.shape(x)) != 3:
        raise OnnxImportError(f"{where}: only constant Pad of H and W (pads >= 0) of a "
                              "(batch, C, H, W) tensor is supported")
    t, left, b, r = pads[2], pads[3], pads[6], pads[7]
    c, h, w = imp.shape(x)
    attrs = {"pads": [t, left, b, r], "value": float(np.asarray(value).ravel()[0])}
    imp.add_node(node, "pad", [x], imp.type(x), (c, h + t + b, w + left + r), attrs,
                 pending=False)
    return True


# ---------------------------------------------------------------------- global pooling, Trunc
def _global_pool(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """GlobalAveragePool / GlobalMaxPool, and ReduceMean / ReduceMax over H and W of a
    (batch, C, H, W) tensor: one pooling window over the whole plane (then a flatten when
    keepdims=0). The mean's division by H*W is exact only when H*W is a power of two."""
    where = imp.where(node)
    x = imp.dyn(node)
    shape = imp.shape(x)
    keep = True
    if node.op_type.startswith("Reduce"):
        a = _attrs(node)
        axes = _axes(imp, node)
        keep = bool(a.get("keepdims", 1))
        if len(shape) != 3 or axes is None or sorted(ax % 4 for ax in axes) != [2, 3]:
            raise OnnxImportError(f"{where}: only a reduction over H and W of a (batch, C, H, "
                                  f"W) tensor is supported (axes {axes} of rank "
                                  f"{len(shape) + 1})")
    elif len(shape) != 3:
        raise OnnxImportError(f"{where}: only 2-D pooling on (batch, C, H, W) is supported")
    c, h, w = shape
    if node.op_type in ("GlobalMaxPool", "ReduceMax"):
        v = imp.add_node(node, "maxpool2d", [x], imp.type(x), (c, 1, 1),
                         {"kernel": [h, w], "stride": [h, w], "padding": [0, 0],
                          "dilation": [1, 1], "ceil_mode": False}, pending=False)
    else:
        v = _avgpool_node(imp, node, x, [h, w], [h, w])
    if not keep:
        imp.add_node(node, "flatten", [v], imp.type(v), (c,), pending=False)


def _trunc(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """QONNX Trunc (v2: x, scale, zero_point, input_bit_width, output_scale,
    output_bit_width), exactly as qonnx executes it: ``y = round_half_even(x / scale)``,
    then ``y / (output_scale / scale)`` clamped to the output bit width and rounded with
    ``rounding_mode``, times ``output_scale``. Clamping before or after rounding to an integer
    is the same (rounding is monotone and keeps integers), so the second step is one
    saturating ap_fixed cast; the first is a round-to-even cast onto the scale's grid, needed
    only when x has finer bits than that grid."""
    where = imp.where(node)
    if len(node.input) != 6:
        raise OnnxImportError(f"{where}: Trunc takes (x, scale, zero_point, input_bit_width, "
                              "output_scale, output_bit_width) (QONNX Trunc v2)")
    x = imp.dyn(node)
    try:
        scale, zp, _, out_scale, out_bits = (imp.const(node, i) for i in range(1, 6))
    except OnnxImportError as err:
        raise OnnxImportError(f"{err} (Trunc's scales, zero point and bit widths must be "
                              "constants)") from None
    if np.any(np.asarray(zp) != 0):
        raise OnnxImportError(f"{where}: zero point {np.asarray(zp).ravel()[:4]} is not 0")
    e_in, e_out = (_pow2_exponent(v, where) for v in (scale, out_scale))
    bits = np.asarray(out_bits, dtype=np.float64).ravel()
    if e_in.size != 1 or e_out.size != 1 or bits.size != 1 or bits[0] != int(bits[0]) or \
            not 1 <= bits[0] <= FLOAT64_EXACT_BITS:
        raise OnnxImportError(f"{where}: needs one scale, one output scale and one integer "
                              f"output bit width (1..{FLOAT64_EXACT_BITS})")
    a = _attrs(node)
    mode = a.get("rounding_mode", b"FLOOR")
    mode = (mode.decode() if isinstance(mode, bytes) else str(mode)).upper()
    x_t, grid = imp.type(x), -int(e_in.ravel()[0])
    if x_t.frac_bits > grid:  # round(x / scale): half to even onto the scale's grid
        k = x_t.frac_bits - grid
        t1 = FixedType.for_raw_range(x_t.raw_min >> k, -((-x_t.raw_max) >> k), grid)
        x = imp.cast(x, t1.replace(rounding="RND_CONV"), node, node.output[0] + "_grid")
    params = (e_out, int(bits[0]), bool(a.get("signed", 1)), bool(a.get("narrow", 0)), mode)
    t = imp.cast_type(node, imp.type(x), params)
    imp.cast(x, t, node, node.output[0])


# ---------------------------------------------------------------------- constant folding
def _axes(imp: _Importer, node: onnx.NodeProto) -> list[int] | None:
    """The ``axes`` of Unsqueeze/Squeeze/Reduce*: an attribute (old opsets) or input 1."""
    axes = _attrs(node).get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = imp.const(node, 1)
    return None if axes is None else [int(a) for a in np.asarray(axes).ravel()]


def _fold_reshape(imp: _Importer, node: onnx.NodeProto, arr: np.ndarray) -> np.ndarray:
    target = [int(v) for v in np.asarray(imp.const(node, 1)).ravel()]
    if not _attrs(node).get("allowzero", 0):
        target = [arr.shape[i] if v == 0 else v for i, v in enumerate(target)]
    return arr.reshape(target)


def _fold_transpose(imp: _Importer, node: onnx.NodeProto, arr: np.ndarray) -> np.ndarray:
    perm = _attrs(node).get("perm")
    return np.transpose(arr, None if perm is None else [int(p) for p in perm])


def _fold_unsqueeze(imp: _Importer, node: onnx.NodeProto, arr: np.ndarray) -> np.ndarray:
    axes = _axes(imp, node) or []
    rank = arr.ndim + len(axes)
    for a in sorted(a % rank for a in axes):
        arr = np.expand_dims(arr, a)
    return arr


def _fold_squeeze(imp: _Importer, node: onnx.NodeProto, arr: np.ndarray) -> np.ndarray:
    axes = _axes(imp, node)
    return np.squeeze(arr, None if axes is None else tuple(a % arr.ndim for a in axes))


def _fold_flatten(imp: _Importer, node: onnx.NodeProto, arr: np.ndarray) -> np.ndarray:
    axis = int(_attrs(node).get("axis", 1))
    axis = axis + arr.ndim if axis < 0 else axis
    return arr.reshape(math.prod(arr.shape[:axis]), -1)


#: shape ops evaluated on constants and quantized constants (``_Importer.fold_constant``)
_FOLD = {"Reshape": _fold_reshape, "Transpose": _fold_transpose, "Unsqueeze": _fold_unsqueeze,
         "Squeeze": _fold_squeeze, "Flatten": _fold_flatten,
         "Identity": lambda imp, node, arr: arr}


# ---- table activations: Sigmoid / Tanh / Exp between Quants become one lookup table
_TABLE_OPS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp"}


def _table_activation(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """``Quant -> Sigmoid/Tanh/Exp -> Quant``: the table of the exact function over every code
    of the input's format, quantised onto the following Quant's format (processed here, so the
    table is filled for the format it casts to)."""
    x = imp.dyn(node)
    x_t, fn = imp.type(x), _TABLE_OPS[node.op_type]
    q = imp.single_consumer(node.output[0])
    if q is None or q.op_type != "Quant" or q.domain not in _QUANT_DOMAINS:
        raise OnnxImportError(f"{imp.where(node)}: {node.op_type} must be read by exactly one "
                              "Quant (the table's output format)")
    try:
        check_table_width(x_t.width, f"{imp.where(node)} input {x_t.cpp()}")
    except ValueError as err:
        raise OnnxImportError(str(err)) from None
    placeholder = FixedType(2, 1)
    ir = imp.add_node(node, fn, [x], placeholder, imp.shape(x),
                      {"index_type": x_t, "table_type": placeholder},
                      {"table": np.zeros(1 << x_t.width, dtype=np.int64)}).pending
    imp.quant_dynamic(q, imp.node_index[id(q)])  # folds the cast into the table node
    imp.skip_node(q)
    t = imp.edges[ir.output].type
    ir.attrs["table_type"] = t
    ir.params["table"] = np.array(function_table(fn, x_t, t))


def _softmax(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    raise OnnxImportError(
        f"{imp.where(node)}: a float Softmax followed by a Quant rounds the exact softmax, which "
        "no finite table reproduces; qfx's softmax declares its exp and 1/sum roundings "
        "(qfx.nn.QSoftmax, exported by export_onnx / export_qonnx as Exp, ReduceSum and "
        "Reciprocal between Quants)")


#: ONNX op type -> handler; add an entry to import a new operator.
IMPORTERS = {
    "Quant": _quant, "BipolarQuant": _bipolar, "Constant": _constant, "Identity": _alias,
    "Dropout": _alias, "Gemm": _gemm, "MatMul": _gemm, "Conv": _conv, "Mul": _mul, "Div": _mul,
    "Add": _add, "Sub": _sub, "Pad": _pad, "Unsqueeze": _thermometer, "Relu": _relu,
    "Clip": _clip, "MaxPool": _maxpool,
    "GlobalAveragePool": _global_pool, "Flatten": _flatten, "Reshape": _flatten,
    "GlobalMaxPool": _global_pool, "ReduceMean": _global_pool, "ReduceMax": _global_pool,
    "Trunc": _trunc, "Concat": _concat, "Resize": _resize,
    **dict.fromkeys(_TABLE_OPS, _table_activation), "Softmax": _softmax,  # table activations
}


# ====================================================================== thresholds (multithreshold)
# FINN/QONNX MultiThreshold nodes, and float BatchNormalization [-> Relu] -> Quant | BipolarQuant
# chains (Brevitas CNNs with plain nn.BatchNorm, FINN-style BNNs): the chain is a monotone
# function of the BatchNorm input's raw code, so it becomes integer thresholds on that input.
# The thresholds are searched on the source's own float32 arithmetic: onnxruntime runs the
# BatchNormalization (and Relu) node exactly as in the source graph (what qonnx's executor does),
# the Quant is applied exactly, and the result is compared with the rule on every input code
# (sampled beyond 2**20 codes x channels), so every decision, ties included, is the source's.
def _import_multithreshold(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """``MultiThreshold(x, T)``: count of ``x >= T`` per channel (T: [C or 1, K]), times
    ``out_scale`` plus ``out_bias``; a preceding ``Mul`` by +-1 per channel (used only here)
    gives the comparison directions, a following ``Mul`` by a power of two the output grid."""
    where = imp.where(node)
    a = _attrs(node)
    layout = a.get("data_layout", b"")
    layout = layout.decode() if isinstance(layout, bytes) else str(layout)
    if layout and layout not in ("NCHW", "NC", "NCW"):
        raise OnnxImportError(f"{where}: data_layout {layout!r} is not supported (channels "
                              "first only)")
    x = imp.dyn(node)
    direction = None
    p = x.pending
    if p is not None and p.op == "batchnorm" and imp.single_consumer(node.input[0]) is node \
            and not p.params["shift"].any():
        sign = np.ldexp(p.params["scale"].astype(np.float64), -p.attrs["scale_type"].frac_bits)
        if np.isin(sign, (-1.0, 1.0)).all():
            imp.drop(p)
            x, direction = _Value(p.inputs[0]), sign.astype(np.int64)
    x_t, shape = imp.type(x), imp.shape(x)
    c = shape[0] if shape else 0
    t = np.asarray(imp.const(node, 1), dtype=np.float64)
    if t.ndim != 2 or t.shape[0] not in (1, c) or t.shape[1] < 1 or not np.isfinite(t).all():
        raise OnnxImportError(f"{where}: thresholds must be finite, of shape [{c} or 1, K], "
                              f"got {t.shape}")
    t = np.broadcast_to(t, (c, t.shape[1]))
    if direction is None:
        direction = np.ones(c, dtype=np.int64)
    # D * x >= T  <=>  x >= T (D = +1) or x <= -T (D = -1); x on its grid: raw >= ceil(T * 2**F)
    scaled = np.ldexp(t * direction[:, None], x_t.frac_bits)
    raw = np.where(direction[:, None] > 0, np.ceil(scaled), np.floor(scaled))
    raw = np.clip(raw, x_t.raw_min - 1, x_t.raw_max + 1).astype(np.int64)
    raw = np.sort(raw, axis=1)
    sb_raw, sb_t = _exact_fixed(np.array([float(a.get("out_scale", 1.0)),
                                          float(a.get("out_bias", 0.0))]), where)
    s_raw, b_raw, frac = int(sb_raw[0]), int(sb_raw[1]), sb_t.frac_bits
    last = node
    nxt = imp.single_consumer(node.output[0])
    if nxt is not None and nxt.op_type == "Mul" and nxt.domain in ("", "ai.onnx"):
        other = [i for i in nxt.input if i != node.output[0]]
        f = np.asarray(imp.consts.get(other[0], np.zeros(2)) if len(other) == 1 else 0.0)
        if f.size == 1 and f.ravel()[0] > 0:
            e = int(_pow2_exponent(f, imp.where(nxt)).ravel()[0])
            frac, last = frac - e, nxt
            imp.skip_node(nxt)
    if frac < 0:
        s_raw, b_raw, frac = s_raw << -frac, b_raw << -frac, 0
    if int(s_raw) == 0:
        raise OnnxImportError(f"{where}: out_scale must not be 0")
    k = t.shape[1]
    lo, hi = sorted((int(b_raw), int(b_raw) + k * int(s_raw)))
    t_t = FixedType.for_raw_range(int(raw.min()), int(raw.max()), x_t.frac_bits)
    imp.add_node(last, "multithreshold", [x], FixedType.for_raw_range(lo, hi, frac), shape,
                 {"threshold_type": t_t, "out_scale": int(s_raw), "out_bias": int(b_raw),
                  "out_frac": frac}, {"thresholds": raw, "direction": direction},
                 pending=False)


def _bn_session(imp: _Importer, node: onnx.NodeProto, relu: bool, rank: int):
    """An onnxruntime session running the source's BatchNormalization (and Relu) node on
    float32 inputs (batch, C, 1, ...): the source graph's own float32 arithmetic."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    inits = [numpy_helper.from_array(np.asarray(imp.const(node, i), dtype=np.float32),
                                     f"p{i}") for i in range(1, 5)]
    bn = helper.make_node("BatchNormalization", ["x", "p1", "p2", "p3", "p4"],
                          ["bn" if relu else "y"],
                          epsilon=float(_attrs(node).get("epsilon", 1e-5)))
    nodes = [bn] + ([helper.make_node("Relu", ["bn"], ["y"])] if relu else [])
    dims = [None, imp.shape(imp.dyn(node))[0]] + [1] * (rank - 1)
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n in ("x", "y")]
    opset = max([o.version for o in imp.model.opset_import if o.domain in ("", "ai.onnx")],
                default=13)
    model = helper.make_model(helper.make_graph(nodes, "bn", io[:1], io[1:], inits),
                              opset_imports=[helper.make_opsetid("", max(opset, 9))])
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _import_float_batchnorm(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    """BatchNormalization [-> Relu] -> Quant: one multithreshold onto the Quant's format;
    BatchNormalization -> BipolarQuant (scale 1): one threshold (+1 where BN(x) >= 0)."""
    import torch

    from qfx.frontends.thresholds import check_levels, level_thresholds

    where = imp.where(node)
    nxt = imp.single_consumer(node.output[0])
    relu = None
    if nxt is not None and nxt.op_type == "Relu" and nxt.domain in ("", "ai.onnx"):
        relu, nxt = nxt, imp.single_consumer(nxt.output[0])
    if nxt is None or nxt.domain not in _QUANT_DOMAINS or \
            nxt.op_type not in ("Quant", "BipolarQuant") or nxt.input[0] in imp.consts:
        raise OnnxImportError(f"{where}: float BatchNormalization divides by sqrt(var + eps) "
                              "and is not exact in fixed point on its own; qfx imports it only "
                              "when its output (or its Relu's) is read by one Quant or "
                              "BipolarQuant alone (it then becomes integer thresholds); fold it "
                              "into the previous layer or export it as Mul/Add by Quant-ed "
                              "constants")
    if len(node.input) != 5 or int(_attrs(node).get("training_mode", 0)):
        raise OnnxImportError(f"{where}: needs (X, scale, B, mean, var) in inference mode")
    x = imp.dyn(node)
    x_t, shape = imp.type(x), imp.shape(x)
    if x_t.width > 24:
        raise OnnxImportError(f"{where}: the input {x_t.cpp()} is wider than float32's 24 "
                              "bits, so the source's float32 BatchNormalization rounds it; "
                              "quantize it first")
    bipolar = nxt.op_type == "BipolarQuant"
    if bipolar and not _unit_scale(imp, nxt):
        raise OnnxImportError(f"{imp.where(nxt)}: BipolarQuant after a BatchNormalization must "
                              "have scale 1")
    out_t = _BINARY if bipolar else imp.cast_type(nxt, None)
    session = _bn_session(imp, node, relu is not None, len(shape))
    c = shape[0]
    lsb = np.float32(2.0 ** -x_t.frac_bits)

    def code(a: torch.Tensor) -> torch.Tensor:  # raw ints [M, C] -> output codes [M, C]
        v = a.numpy().astype(np.float32) * lsb  # exact: |a| < 2**24, power-of-two scale
        y = session.run(None, {"x": v.reshape(a.shape[0], c, *[1] * (len(shape) - 1))})[0]
        y = torch.from_numpy(y.astype(np.float64).reshape(a.shape[0], c))
        return (y >= 0).to(torch.int64) if bipolar else out_t.to_int(y)

    lo, hi = x_t.raw_min, x_t.raw_max
    label = f"{where}{' + Relu' if relu is not None else ''} + {nxt.op_type}"
    t, direction, lo_out = level_thresholds(code, lo, hi, c, *((0, 1) if bipolar else ()))
    try:
        check_levels(code, t, direction, lo_out, lo, hi, label)
    except RuntimeError as err:
        raise OnnxImportError(str(err)) from None
    for n in ([relu] if relu is not None else []) + [nxt]:
        imp.skip_node(n)
    if bipolar:
        _threshold_node(imp, nxt, x, t[:, 0].numpy(), direction.numpy())
        return
    t_t = FixedType.for_raw_range(int(t.min()), int(t.max()), x_t.frac_bits)
    imp.add_node(nxt, "multithreshold", [x], out_t, shape,
                 {"threshold_type": t_t, "out_scale": 1, "out_bias": lo_out,
                  "out_frac": out_t.frac_bits},
                 {"thresholds": t.numpy(), "direction": direction.numpy()}, pending=False)


IMPORTERS.update({"MultiThreshold": _import_multithreshold,
                  "BatchNormalization": _import_float_batchnorm})


# ---------------------------------------------------------------------- the import-time check
@dataclass(frozen=True)
class SourceCheck:
    """The imported graph run against its source model (qonnx's executor for QONNX,
    onnxruntime for standard ONNX) on the same float32 inputs; outputs compared with ``==``
    (qfx's exact values against the source's float32 values)."""

    runtime: str
    samples: int
    equal: bool
    output: str | None = None  #: the first output that differs
    differing: int = 0  #: how many of its values differ
    total: int = 0  #: how many values it has
    max_diff: float = 0.0
    #: the largest difference in float32 steps (ulps) of the source's value: a few where only
    #: the source's float32 rounding differs (float biases), many where qfx computes otherwise
    max_ulps: float = 0.0

    def line(self) -> str:
        """One line for the user, e.g. ``qfx == qonnx on 8 random samples``."""
        head = f"on {self.samples} random sample{'s' if self.samples != 1 else ''}"
        if self.equal:
            return f"qfx == {self.runtime} {head}"
        return (f"qfx != {self.runtime} {head}: output {self.output!r} differs in "
                f"{self.differing} of {self.total} values (max |diff| {self.max_diff:.6g}, "
                f"{self.max_ulps:.3g} float32 ulps)")


def _is_qonnx(model: onnx.ModelProto) -> bool:
    return any(n.domain in _QUANT_DOMAINS for n in model.graph.node)


def _run_source(model: onnx.ModelProto, feeds: dict[str, np.ndarray],
                names: list[str]) -> list[np.ndarray]:
    """The source model's outputs ``names`` on ``feeds`` (float32), run in batches of the
    model's declared batch size where it has one."""
    batch = {}
    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        if vi.name in feeds and dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            batch[vi.name] = int(dims[0].dim_value)
    n = len(next(iter(feeds.values())))
    step = min(batch.values()) if batch else n
    if _is_qonnx(model):
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
        from qonnx.transformation.infer_shapes import InferShapes

        wrapped = ModelWrapper(onnx.ModelProto.FromString(model.SerializeToString()))
        wrapped = wrapped.transform(InferShapes())

        def run(f: dict[str, np.ndarray]) -> list[np.ndarray]:
            out = execute_onnx(wrapped, f)
            return [np.asarray(out[k]) for k in names]
    else:
        import onnxruntime as ort

        sess = ort.InferenceSession(model.SerializeToString(),
                                    providers=["CPUExecutionProvider"])

        def run(f: dict[str, np.ndarray]) -> list[np.ndarray]:
            return [np.asarray(v) for v in sess.run(names, f)]
    if step < n:  # first try all samples at once with the batch dimension set to n
        whole = onnx.ModelProto.FromString(model.SerializeToString())
        g = whole.graph
        del g.value_info[:]  # inferred again for the new batch size
        for vi in [*g.input, *g.output]:
            dims = vi.type.tensor_type.shape.dim
            if vi.name in feeds or vi.name in names:
                dims[0].dim_value = n
        import onnxruntime as ort

        ort.set_default_logger_severity(4)  # a failure here is expected and handled
        try:
            outs = _run_source(whole, feeds, names)
        except Exception:  # e.g. a Reshape to a fixed batch: run batch by batch instead
            outs = []
        finally:
            ort.set_default_logger_severity(2)  # onnxruntime's default (warnings)
        if len(outs) == len(names) and all(o.shape[:1] == (n,) for o in outs):
            return outs
    chunks: list[list[np.ndarray]] = []
    for start in range(0, n, step):
        part = {k: v[start:start + step] for k, v in feeds.items()}
        got = len(next(iter(part.values())))
        if got < step:  # pad the last batch to the declared size
            part = {k: np.concatenate([v, np.repeat(v[-1:], step - got, axis=0)])
                    for k, v in part.items()}
        chunks.append([o[:got] for o in run(part)])
    return [np.concatenate([c[i] for c in chunks]) for i in range(len(names))]


def check_against_source(graph: Graph, model: onnx.ModelProto, output_names: Sequence[str],
                         *, samples: int = 8, seed: int = 0) -> SourceCheck:
    """Run ``graph`` (imported from ``model``) and ``model`` on the same random float32
    inputs (spread over 1.25 times each input format's range, so that rounding and saturation
    act) and compare the outputs ``output_names`` (the ONNX names of ``graph.outputs``).

    Example:
        >>> import os, tempfile, qfx
        >>> from qfx.ir.graph import Edge, Graph, Node
        >>> from qfx.backends.onnx import export_qonnx
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (2,), qfx.FixedType(8, 3)))
        >>> g.add_edge(Edge("q", (2,), qfx.FixedType(8, 3, rounding="RND", overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> m = onnx.load(export_qonnx(g, os.path.join(tempfile.mkdtemp(), "m.onnx")))
        >>> back = import_onnx_model(m, check=0)
        >>> check_against_source(back, m, [m.graph.output[0].name]).line()
        'qfx == qonnx on 8 random samples'
    """
    from qfx.ir.executor import run_graph

    rng = np.random.default_rng(seed)
    onnx_inputs = [vi.name for vi in model.graph.input
                   if vi.name not in {t.name for t in model.graph.initializer}]
    feeds, xs = {}, []
    for name, edge in zip(onnx_inputs, graph.inputs, strict=True):
        t = graph.edges[edge].type
        lo, hi = float(t.min) * 1.25, float(t.max) * 1.25
        x = rng.uniform(lo, hi, (samples, *graph.edges[edge].shape)).astype(np.float32)
        feeds[name] = x
        xs.append(x.astype(np.float64))
    ref = _run_source(model, feeds, list(output_names))
    got = run_graph(graph, xs).outputs
    runtime = "qonnx" if _is_qonnx(model) else "onnxruntime"
    for name, r, q in zip(output_names, ref, got, strict=True):
        r = np.asarray(r, dtype=np.float64).reshape(q.shape)
        bad = r != q
        if bad.any():
            diff = np.abs(r - q)
            ulp = np.spacing(np.abs(r).astype(np.float32)).astype(np.float64)
            return SourceCheck(runtime, samples, False, name, int(bad.sum()), int(bad.size),
                               float(diff.max()), float((diff / ulp).max()))
    return SourceCheck(runtime, samples, True)


def import_onnx_model(model: onnx.ModelProto, *, source: str = "<memory>",
                      outputs: Sequence[str] | None = None, check: int = 8,
                      prune: bool = True) -> Graph:
    """Import an in-memory (Q)ONNX model; see :func:`import_onnx`.

    Example:
        >>> import numpy as np
        >>> from onnx import TensorProto, helper, numpy_helper
        >>> consts = [numpy_helper.from_array(np.float32(v), n)
        ...           for n, v in (("s", 2.0**-4), ("z", 0.0), ("b", 8.0))]
        >>> q = helper.make_node("Quant", ["x", "s", "z", "b"], ["y"],
        ...                      domain="qonnx.custom_op.general", signed=1, narrow=0,
        ...                      rounding_mode="FLOOR")
        >>> io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in "xy"]
        >>> m = helper.make_model(helper.make_graph([q], "g", io[:1], io[1:], consts),
        ...     opset_imports=[helper.make_opsetid("", 13),
        ...                    helper.make_opsetid("qonnx.custom_op.general", 1)])
        >>> g = import_onnx_model(m)
        >>> g.out_type(g.nodes[0]).cpp()
        'ap_fixed<8,4,AP_TRN,AP_SAT>'
    """
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise OnnxImportError(f"{source}: invalid ONNX model: {str(err).splitlines()[0]}") from None
    imp = _Importer(model, source, outputs)
    graph = imp.run()
    if prune:  # as qfx.freeze: the graph outputs stay, so the check below compares them all
        graph = prune_channels(graph)
    if check:
        try:
            result = check_against_source(graph, model, imp.output_names(),
                                          samples=int(check)).line()
        except Exception as err:  # the source runtime's own failure: the import stands
            result = (f"not compared with the source model ({type(err).__name__}: "
                      f"{str(err).splitlines()[0] if str(err) else ''})")
        graph.meta["source_check"] = result
        (_log.info if result.startswith("qfx ==") else _log.warning)("%s: %s", source, result)
    return graph


def import_onnx(path: str | os.PathLike[str], *, outputs: Sequence[str] | None = None,
                check: int = 8, prune: bool = True) -> Graph:
    """Read a QONNX model with power-of-two scales as a frozen qfx graph.

    Every ``Quant`` becomes an exact qfx cast, weights become integer parameters, and the
    accumulators are sized from the weights as :func:`qfx.freeze` does, so ``qfx.run_graph``,
    the HLS backend and C-sim work on it unchanged. Anything without an exact fixed-point
    meaning raises :class:`OnnxImportError` naming the node and the reason.

    ``outputs`` picks graph outputs by their ONNX names (default: every computed output;
    constant outputs, such as the scale, zero point and bit width of a Brevitas QuantTensor
    in a TorchScript export, are dropped). ``check`` samples (0: none) are run through the
    imported graph and the source model (:func:`check_against_source`); the verdict line is
    logged and kept in ``graph.meta["source_check"]``. ``prune`` (as :func:`qfx.freeze`): drop
    the channels the graph provably does not need (constant channels, e.g. a dead ReLU channel
    or a channel with zero weights; :func:`qfx.ir.prune.prune_channels`) before that check, so
    it compares the pruned graph with the source; the outputs are the same bits.

    Example:
        >>> import os, tempfile, numpy as np, qfx
        >>> from qfx.ir.graph import Edge, Graph, Node
        >>> from qfx.backends.onnx import export_qonnx
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (2,), qfx.FixedType(8, 3)))
        >>> g.add_edge(Edge("q", (2,), qfx.FixedType(8, 3, rounding="RND", overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> back = import_onnx(export_qonnx(g, os.path.join(tempfile.mkdtemp(), "m.onnx")))
        >>> back.edges[back.outputs[0]].type.cpp()
        'ap_fixed<8,3,AP_RND,AP_SAT>'
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX file at {path}")
    try:
        model = onnx.load(str(path))
    except Exception as err:  # protobuf raises DecodeError and friends
        raise OnnxImportError(f"{path} is not a readable ONNX model: "
                              f"{type(err).__name__}: {err}") from None
    return import_onnx_model(model, source=str(path), outputs=outputs, check=check,
                             prune=prune)


# ====================================================================== rule families
# importer rules kept in their own modules, registered into IMPORTERS when they are imported:
# onnx_window (1-D Conv, LeakyRelu, HardSigmoid, HardSwish, padded AveragePool, F.pad's
# constant shape arithmetic), onnx_table (qfx's own QONNX softmax)
from qfx.frontends import onnx_table, onnx_window  # noqa: E402, F401
