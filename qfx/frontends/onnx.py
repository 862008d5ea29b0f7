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

Refused, with the node name and the reason: non-power-of-two or non-constant scales,
non-zero zero points, per-channel activation scales, non-integer bit widths, CEIL/UP rounding
where it would round, unsigned narrow ranges, 1-bit signed (bipolar) Quant on tensors (write
BipolarQuant), BipolarQuant on a computed tensor with a scale other than 1, Pad other than a
binary conv's -1, float BatchNormalization, AveragePool over a window whose area is not a
power of two, and any operator without an exact qfx equivalent.
"""

from __future__ import annotations

import math
import os
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
from qfx.ir.verify import verify

__all__ = ["IMPORTERS", "OnnxImportError", "import_onnx", "import_onnx_model"]


class OnnxImportError(ValueError):
    """An ONNX file cannot be imported exactly; the message names the node and the reason."""


_QUANT_DOMAINS = ("qonnx.custom_op.general", "onnx.brevitas", "finn.custom_op.general")
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
    def __init__(self, model: onnx.ModelProto, source: str) -> None:
        self.model, self.source = model, source
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
            return _exact_fixed(self.consts[name], f"{self.where(node)} {what}")
        raise OnnxImportError(f"{self.where(node)}: the {what} ({name!r}) must be a constant")

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
        params = self.quant_params(node)
        t, last = None, node
        nxt = self.single_consumer(node.output[0])
        nodes = list(self.model.graph.node)
        # the exact two-step tie patterns written by qonnx_export
        if nxt is not None and nxt.op_type == "Quant" and nxt.domain in _QUANT_DOMAINS:
            t = self.pattern(params, node, nxt, src, add=False)
            if t is not None:
                last = nxt
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
                        last = q2
                        self.skip.add(nodes.index(nxt))
        if t is None:
            t = self.cast_type(node, src, params)
        else:
            self.skip.add(nodes.index(last))
        self.cast(x, t, node, last.output[0])

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

    def cast(self, x: _Value, t: FixedType, node: onnx.NodeProto, out_tensor: str) -> None:
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
            return
        if x.edge in self.inputs:
            self.edges[x.edge] = Edge(x.edge, self.edges[x.edge].shape, t)
        fake = onnx.helper.make_node("Quant", [node.input[0]], [out_tensor],
                                     name=node.name or out_tensor)
        self.add_node(fake, "input", [x], t, self.shape(x), pending=False)

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
            if idx in self.skip:
                continue
            handler = IMPORTERS.get(node.op_type)
            if node.domain not in ("", "ai.onnx") and node.op_type not in ("Quant",
                                                                           "BipolarQuant"):
                handler = None
            if node.op_type in ("Quant", "BipolarQuant") and node.domain not in _QUANT_DOMAINS:
                handler = None
            if handler is None:
                raise OnnxImportError(
                    f"{self.where(node)}: operator {node.domain + '.' if node.domain else ''}"
                    f"{node.op_type} has no exact qfx equivalent (supported: "
                    f"{', '.join(sorted(IMPORTERS))})")
            handler(self, node, idx)
        outputs = []
        for o in g.output:
            if o.name not in self.values:
                raise OnnxImportError(f"graph output {o.name!r} is not a computed tensor")
            outputs.append(self.values[o.name].edge)
        for e in self.inputs:
            if self.edges[e].type.width == MAX_WIDTH:
                raise OnnxImportError(f"graph input {e!r} is not quantized by a Quant node; qfx "
                                      "needs every input's fixed-point format")
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


def _add(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    where = imp.where(node)
    if all(i in imp.values for i in node.input[:2]):
        a, b = imp.dyn(node, 0), imp.dyn(node, 1)
        if imp.shape(a) != imp.shape(b):
            raise OnnxImportError(f"{where}: adds shapes {imp.shape(a)} and {imp.shape(b)} "
                                  "(broadcasting is not supported)")
        acc = imp.size_acc(node, "add", [a, b], {}, {})  # the add op's own rule
        if acc.width > FLOAT64_EXACT_BITS:
            raise OnnxImportError(f"{where}: the exact sum needs {acc.cpp()}, wider than "
                                  f"{FLOAT64_EXACT_BITS} bits")
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


def _avgpool(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    where = imp.where(node)
    x = imp.dyn(node)
    if len(imp.shape(x)) != 3:
        raise OnnxImportError(f"{where}: only 2-D pooling on (batch, C, H, W) is supported")
    c, h, w = imp.shape(x)
    if node.op_type == "GlobalAveragePool":
        k, s = [h, w], [h, w]
    else:
        a = _attrs(node)
        if any(_pair_from(a.get("pads"), 0, 4)) or a.get("ceil_mode", 0):
            raise OnnxImportError(f"{where}: AveragePool with padding or ceil_mode is not "
                                  "supported (qfx averages whole windows)")
        k = [int(v) for v in a["kernel_shape"]]
        s = _pair_from(a.get("strides"), 1)
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
    imp.add_node(node, "avgpool2d", [x], acc, (c, oh, ow), attrs)


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


def _unsupported_bn(imp: _Importer, node: onnx.NodeProto, idx: int) -> None:
    raise OnnxImportError(f"{imp.where(node)}: float BatchNormalization divides by "
                          "sqrt(var + eps) and is not exact in fixed point; fold it into the "
                          "previous layer or export it as Mul/Add by Quant-ed constants")


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
    "Clip": _clip, "MaxPool": _maxpool, "AveragePool": _avgpool,
    "GlobalAveragePool": _avgpool, "Flatten": _flatten, "Reshape": _flatten,
    "BatchNormalization": _unsupported_bn,
    **dict.fromkeys(_TABLE_OPS, _table_activation), "Softmax": _softmax,  # table activations
}


def import_onnx_model(model: onnx.ModelProto, *, source: str = "<memory>") -> Graph:
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
    return _Importer(model, source).run()


def import_onnx(path: str | os.PathLike[str]) -> Graph:
    """Read a QONNX model with power-of-two scales as a frozen qfx graph.

    Every ``Quant`` becomes an exact qfx cast, weights become integer parameters, and the
    accumulators are sized from the weights as :func:`qfx.freeze` does, so ``qfx.run_graph``,
    the HLS backend and C-sim work on it unchanged. Anything without an exact fixed-point
    meaning raises :class:`OnnxImportError` naming the node and the reason.

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
    return import_onnx_model(model, source=str(path))
