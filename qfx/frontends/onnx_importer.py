"""The (Q)ONNX importer's core: ``_Importer`` walks the ONNX graph node by node and builds the
frozen qfx graph, reading every ``Quant`` as one exact qfx cast (folded into its producer or a
cast node, the two-Quant tie patterns, the graph inputs' formats) and float and quantized
constants as exact fixed-point values, and holds the two rule tables: :data:`IMPORTERS` (ONNX op
type -> rule, one rule per op) and ``_FOLD`` (shape ops evaluated on constants). The tables start
empty and are filled by the rule modules (:mod:`.onnx_elementwise`, :mod:`.onnx_layers`,
:mod:`.onnx_activations`, :mod:`.onnx_thresholds`, :mod:`.onnx_fold`, :mod:`.onnx_window`,
:mod:`.onnx_table`) when they are imported, as :mod:`qfx.frontends.onnx` does; the rules import
from here and nothing here imports a rule, so there is no import cycle. Values and attributes
are read with :mod:`.onnx_values`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from qfx.fixed.fixed_type import MAX_WIDTH, FixedType, cast_needs
from qfx.fixed.kernels import FLOAT64_EXACT_BITS
from qfx.frontends.onnx_values import (
    _ADDITIVE,
    OnnxImportError,
    _attrs,
    _exact_fixed,
    _float32_grid,
    _pow2_exponent,
    _round_exact,
)
from qfx.ir.builder import GraphBuilder
from qfx.ir.graph import Edge, Graph, Node, sanitize_identifier
from qfx.ir.ops import spec
from qfx.ir.verify import verify

__all__ = ["IMPORTERS"]

#: the importer's one logger, named after the public module (users and tests filter on it)
_log = logging.getLogger("qfx.frontends.onnx")


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


def _axes(imp: _Importer, node: onnx.NodeProto) -> list[int] | None:
    """The ``axes`` of Unsqueeze/Squeeze/Reduce*: an attribute (old opsets) or input 1."""
    axes = _attrs(node).get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = imp.const(node, 1)
    return None if axes is None else [int(a) for a in np.asarray(axes).ravel()]


#: ONNX op type -> handler; add an entry to import a new operator (the rule modules register
#: theirs when they are imported, one rule per op).
IMPORTERS: dict[str, Callable[[_Importer, onnx.NodeProto, int], None]] = {}

#: shape ops evaluated on constants and quantized constants (``_Importer.fold_constant``;
#: filled by :mod:`.onnx_fold` and :mod:`.onnx_window`)
_FOLD: dict[str, Callable[[_Importer, onnx.NodeProto, np.ndarray], np.ndarray]] = {}


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
        float32 (see :mod:`qfx.frontends.onnx`)."""
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
