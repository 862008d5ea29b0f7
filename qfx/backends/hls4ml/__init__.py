"""hls4ml as a second HLS backend: build an hls4ml model from the frozen graph with every
precision set exactly, compile it, and check ``predict`` against ``qfx.run_graph`` bit for bit.

The model is assembled directly as hls4ml's layer list (what its converters produce), in
hls4ml's channels-last layout, with a name-granularity ``HLSConfig``: each layer's ``result``
type is the IR edge's ``ap_fixed`` (rounding and saturation included), ``weight``/``bias``/
``scale``/``accum`` are the IR's exact formats. No precision is left to hls4ml's inference, so
none of its fusing passes (which only touch layers with unspecified precisions) apply; after
conversion every layer's types are read back and compared with the intended ones.

Layers that hls4ml computes exactly like the executor (io_parallel, Latency strategy):

- ``input`` (the graph input: hls4ml's input conversion ``input_t(double)``; elsewhere a
  ``linear`` Activation, i.e. a cast), ``dense`` (Dense: the products go into the accumulator
  type, which wraps, so every partial sum is exact modulo 2**W and the final sum is exact),
  ``conv2d`` with ``groups == 1`` and no dilation (Conv2D), ``batchnorm`` (BatchNormalization:
  ``x*scale + bias`` at full ap_fixed precision, then the cast; an identity BN becomes a
  ``linear`` Activation because hls4ml deletes no-op BNs together with their cast), ``relu``,
  ``add`` (Merge add), ``maxpool2d`` without dilation (ceil_mode through end padding, which
  hls4ml fills with the type's minimum), ``avgpool2d`` over a power-of-two window (the
  accumulator keeps ``shift`` extra fractional bits so hls4ml's ``sum /= area`` is exact),
  ``flatten`` (Reshape; the channels-last order is absorbed into the next Dense's weights).

Refused with the layer's name: ``hardtanh`` (hls4ml has no clamp with arbitrary bounds),
``avgpool2d`` with a non-power-of-two window (hls4ml divides by the area, truncating, instead
of multiplying by qfx's fixed-point reciprocal), grouped/depthwise or dilated convolutions,
dilated max pooling, AP_WRAP_SM (hls4ml has no such saturation mode), graphs with several
inputs or outputs, and any IR op without a translation (``LAYER_BUILDERS``).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qfx.fixed.fixed_type import FixedType
from qfx.ir.executor import run_graph
from qfx.ir.graph import Graph, Node, pair, sanitize_identifier
from qfx.ir.verify import check_exact, check_identifier

__all__ = ["Hls4mlExportError", "Hls4mlReport", "build_hls4ml_model", "export_hls4ml",
           "LAYER_BUILDERS"]

DEFAULT_PART = "xczu3eg-sbva484-1-i"  # Ultra96-V2


class Hls4mlExportError(ValueError):
    """hls4ml cannot compute a layer exactly like the frozen graph (the message names it)."""


@dataclass
class Hls4mlReport:
    """Result of :func:`export_hls4ml`.

    ``outputs``: hls4ml's predictions (float64, in qfx's layout); ``reference``:
    ``run_graph``'s outputs on the same inputs; ``mismatches``: how many values differ;
    ``first_mismatch``: (sample index, flat output index, hls4ml value, qfx value) of the
    first difference; ``layers``: the precisions given to each hls4ml layer.
    """

    out_dir: Path
    inputs: np.ndarray
    outputs: np.ndarray
    reference: np.ndarray
    mismatches: int
    first_mismatch: tuple[int, int, float, float] | None
    layers: dict[str, dict[str, str]]
    compile_seconds: float
    log: str = ""
    model: Any = field(default=None, repr=False)

    @property
    def bit_exact(self) -> bool:
        """True when every output value equals the frozen executor's (``==``)."""
        return self.mismatches == 0

    def summary(self) -> str:
        """A short text report."""
        n = self.reference.size
        state = "bit-exact" if self.bit_exact else f"{self.mismatches}/{n} values differ"
        lines = [f"hls4ml project {self.out_dir}: {self.inputs.shape[0]} samples, {state} "
                 f"(compile {self.compile_seconds:.1f} s)"]
        if self.first_mismatch is not None:
            s, i, got, want = self.first_mismatch
            lines.append(f"  first difference: sample {s}, output {i}: hls4ml {got!r}, "
                         f"qfx {want!r}")
        return "\n".join(lines)


@dataclass
class _Tensor:
    """Where an IR edge lives in the hls4ml model and in which element order.

    ``chw``: a (C, H, W) tensor stored channels-last; ``perm``: for vectors, hls4ml element
    ``j`` holds IR element ``perm[j]`` (None: the same order).
    """

    layer: str
    chw: bool = False
    perm: np.ndarray | None = None


@dataclass
class _Build:
    graph: Graph
    layers: list[dict[str, Any]] = field(default_factory=list)
    precision: dict[str, dict[str, str]] = field(default_factory=dict)
    tensors: dict[str, _Tensor] = field(default_factory=dict)
    removable: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)

    def name(self, base: str) -> str:
        ident = sanitize_identifier(base)
        if ident.lower() in ("input", "result"):
            ident = f"{ident}_"
        candidate, i = ident, 1
        while candidate.lower() in self.names:
            i += 1
            candidate = f"{ident}_{i}"
        self.names.add(candidate.lower())
        return candidate

    def add(self, node: Node, layer: dict[str, Any], precision: dict[str, FixedType],
            tensor: _Tensor | None = None) -> str:
        name = self.name(node.name)
        layer["name"] = name
        self.layers.append(layer)
        self.precision[name] = {k: _hls_type(t, node, k) for k, t in precision.items()}
        self.tensors[node.output] = tensor or _Tensor(name)
        self.tensors[node.output].layer = name
        return name

    def src(self, node: Node, i: int = 0) -> _Tensor:
        return self.tensors[node.inputs[i]]


def _label(node: Node) -> str:
    return f"layer {node.name!r} ({node.op})"


def _hls_type(t: FixedType, node: Node, what: str) -> str:
    if t.overflow == "WRAP_SM":
        raise Hls4mlExportError(f"{_label(node)}: {what} type {t.cpp()} uses AP_WRAP_SM, which "
                                "hls4ml's precision types cannot express")
    return (f"{'ap_fixed' if t.signed else 'ap_ufixed'}<{t.width},{t.int_bits},AP_{t.rounding},"
            f"AP_{t.overflow},{t.sat_bits}>")


def _hwc_perm(shape: tuple[int, ...]) -> np.ndarray:
    c, h, w = shape
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()


LayerBuilder = Callable[[_Build, Node], None]
#: IR op -> function appending the hls4ml layer(s); add one to support a new op.
LAYER_BUILDERS: dict[str, LayerBuilder] = {}


def _builds(*ops: str) -> Callable[[LayerBuilder], LayerBuilder]:
    def register(fn: LayerBuilder) -> LayerBuilder:
        for op in ops:
            LAYER_BUILDERS[op] = fn
        return fn
    return register


def _cast_layer(b: _Build, node: Node, x: _Tensor) -> None:
    """A linear Activation: hls4ml's ``res = res_T(data)`` cast."""
    out_t = b.graph.edges[node.output].type
    in_t = b.graph.edges[node.inputs[0]].type
    name = b.add(node, {"class_name": "Activation", "activation": "linear", "inputs": [x.layer]},
                 {"result": out_t}, _Tensor("", x.chw, x.perm))
    if in_t == out_t:
        b.removable.add(name)  # hls4ml drops linear activations that do not change the type


@_builds("input")
def _input(b: _Build, node: Node) -> None:
    _cast_layer(b, node, b.src(node))


@_builds("dense")
def _dense(b: _Build, node: Node) -> None:
    a, x = node.attrs, b.src(node)
    w = a["weight_type"].from_int(node.params["weight"])  # (out, in) in IR order
    if x.chw:
        raise Hls4mlExportError(f"{_label(node)}: a dense layer needs a flattened input")
    if x.perm is not None:
        w = w[:, x.perm]
    layer = {"class_name": "Dense", "inputs": [x.layer], "n_in": w.shape[1],
             "n_out": w.shape[0], "weight_data": np.ascontiguousarray(w.T),
             "bias_data": None, "use_bias": "bias" in node.params}
    prec = {"weight": a["weight_type"].storage(), "accum": a["acc_type"].storage(),
            "result": b.graph.edges[node.output].type}
    if "bias" in node.params:
        layer["bias_data"] = a["bias_type"].from_int(node.params["bias"])
        prec["bias"] = a["bias_type"].storage()
    b.add(node, layer, prec)


@_builds("conv2d")
def _conv2d(b: _Build, node: Node) -> None:
    a, x = node.attrs, b.src(node)
    if int(a["groups"]) != 1:
        raise Hls4mlExportError(f"{_label(node)}: grouped convolutions (groups={a['groups']}) "
                                "are not translated to hls4ml")
    if pair(a["dilation"]) != (1, 1):
        raise Hls4mlExportError(f"{_label(node)}: hls4ml's io_parallel Conv2D has no dilation")
    w = a["weight_type"].from_int(node.params["weight"])  # (cout, cin, kh, kw)
    cout, cin, kh, kw = w.shape
    _, h, wd = b.graph.edges[node.inputs[0]].shape
    _, oh, ow = b.graph.edges[node.output].shape
    (sh, sw), (ph, pw) = pair(a["stride"]), pair(a["padding"])
    layer = {"class_name": "Conv2D", "inputs": [x.layer], "data_format": "channels_last",
             "in_height": h, "in_width": wd, "n_chan": cin, "n_filt": cout,
             "filt_height": kh, "filt_width": kw, "stride_height": sh, "stride_width": sw,
             "pad_top": ph, "pad_bottom": ph, "pad_left": pw, "pad_right": pw,
             "out_height": oh, "out_width": ow, "dilation": 1,
             "weight_data": np.ascontiguousarray(w.transpose(2, 3, 1, 0)), "bias_data": None}
    prec = {"weight": a["weight_type"].storage(), "accum": a["acc_type"].storage(),
            "result": b.graph.edges[node.output].type}
    if "bias" in node.params:
        layer["bias_data"] = a["bias_type"].from_int(node.params["bias"])
        prec["bias"] = a["bias_type"].storage()
    b.add(node, layer, prec, _Tensor("", chw=True))


@_builds("batchnorm")
def _batchnorm(b: _Build, node: Node) -> None:
    a, x = node.attrs, b.src(node)
    scale = a["scale_type"].from_int(node.params["scale"])
    shift = a["shift_type"].from_int(node.params["shift"])
    if np.all(scale == 1.0) and np.all(shift == 0.0):
        _cast_layer(b, node, x)  # hls4ml removes no-op BNs, and their cast with them
        return
    shape = b.graph.edges[node.inputs[0]].shape
    n_in = int(math.prod(shape))
    if x.chw:
        n_filt = shape[0]
    else:
        n_filt = -1
        if x.perm is not None:
            scale, shift = scale[x.perm], shift[x.perm]
    layer = {"class_name": "BatchNormalization", "inputs": [x.layer], "n_in": n_in,
             "n_filt": n_filt, "scale_data": scale, "bias_data": shift,
             "data_format": "channels_last"}
    b.add(node, layer, {"scale": a["scale_type"].storage(), "bias": a["shift_type"].storage(),
                        "result": b.graph.edges[node.output].type},
          _Tensor("", x.chw, x.perm))


@_builds("relu")
def _relu(b: _Build, node: Node) -> None:
    x = b.src(node)
    b.add(node, {"class_name": "Activation", "activation": "relu", "inputs": [x.layer]},
          {"result": b.graph.edges[node.output].type}, _Tensor("", x.chw, x.perm))


@_builds("add")
def _add(b: _Build, node: Node) -> None:
    x, y = b.src(node, 0), b.src(node, 1)
    same_perm = (x.perm is None and y.perm is None) or (
        x.perm is not None and y.perm is not None and np.array_equal(x.perm, y.perm))
    if x.chw != y.chw or not same_perm:
        raise Hls4mlExportError(f"{_label(node)}: its inputs are laid out differently in "
                                "hls4ml (one flattened channels-last, one not)")
    b.add(node, {"class_name": "Merge", "op": "add", "inputs": [x.layer, y.layer]},
          {"result": b.graph.edges[node.output].type}, _Tensor("", x.chw, x.perm))


def _pool_layer(b: _Build, node: Node, kind: str, pads: tuple[int, int, int, int]
                ) -> dict[str, Any]:
    a = node.attrs
    (kh, kw), (sh, sw) = pair(a["kernel"]), pair(a["stride"])
    c, h, w = b.graph.edges[node.inputs[0]].shape
    _, oh, ow = b.graph.edges[node.output].shape
    return {"class_name": kind, "inputs": [b.src(node).layer], "data_format": "channels_last",
            "in_height": h, "in_width": w, "n_filt": c, "pool_height": kh, "pool_width": kw,
            "stride_height": sh, "stride_width": sw, "pad_top": pads[0], "pad_bottom": pads[1],
            "pad_left": pads[2], "pad_right": pads[3], "out_height": oh, "out_width": ow,
            "count_pad": False}


@_builds("maxpool2d")
def _maxpool2d(b: _Build, node: Node) -> None:
    a = node.attrs
    if pair(a["dilation"]) != (1, 1):
        raise Hls4mlExportError(f"{_label(node)}: hls4ml's pooling has no dilation")
    (kh, kw), (sh, sw), (ph, pw) = pair(a["kernel"]), pair(a["stride"]), pair(a["padding"])
    _, h, w = b.graph.edges[node.inputs[0]].shape
    _, oh, ow = b.graph.edges[node.output].shape
    # hls4ml counts floor((size + pads - k) / s) + 1 windows; ceil_mode's extra window comes
    # from end padding, filled with the type's minimum (never above a real value)
    ends = [max(p, (o - 1) * s + k - size - p) for size, k, s, p, o in
            ((h, kh, sh, ph, oh), (w, kw, sw, pw, ow))]
    t = b.graph.edges[node.inputs[0]].type
    b.add(node, _pool_layer(b, node, "MaxPooling2D", (ph, ends[0], pw, ends[1])),
          {"accum": t, "result": t}, _Tensor("", chw=True))


@_builds("avgpool2d")
def _avgpool2d(b: _Build, node: Node) -> None:
    a = node.attrs
    (kh, kw) = pair(a["kernel"])
    area = kh * kw
    if "recip" in node.params or (1 << int(a.get("shift", -1))) != area:
        raise Hls4mlExportError(
            f"{_label(node)}: the {kh}x{kw} window's area is not a power of two; hls4ml "
            "divides the window sum by the area (truncating) where qfx multiplies by a "
            "fixed-point reciprocal, so the results would differ")
    if any(pair(a.get("padding", 0))) or a.get("ceil_mode"):  # ops-window
        raise Hls4mlExportError(
            f"{_label(node)}: average pooling with padding or ceil_mode has no exact hls4ml "
            "translation (hls4ml's divisor at the borders is not PyTorch's)")
    sum_t: FixedType = a["sum_type"]
    shift = int(a["shift"])
    # holds the whole sum and the quotient's extra fractional bits: sum /= area is exact
    accum = FixedType(sum_t.width + shift, sum_t.int_bits, sum_t.signed)
    b.add(node, _pool_layer(b, node, "AveragePooling2D", (0, 0, 0, 0)),
          {"accum": accum, "result": b.graph.edges[node.output].type}, _Tensor("", chw=True))


@_builds("flatten")
def _flatten(b: _Build, node: Node) -> None:
    x = b.src(node)
    shape = b.graph.edges[node.inputs[0]].shape
    if not x.chw:
        b.tensors[node.output] = x  # already a vector
        return
    n = int(math.prod(shape))
    name = b.add(node, {"class_name": "Reshape", "inputs": [x.layer], "target_shape": [n]},
                 {"result": b.graph.edges[node.inputs[0]].type},
                 _Tensor("", perm=_hwc_perm(tuple(shape))))
    b.removable.add(name)


def _layer_list(graph: Graph) -> _Build:
    check_exact(graph)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise Hls4mlExportError("the hls4ml bridge handles graphs with one input and one output; "
                                f"this one has {len(graph.inputs)} and {len(graph.outputs)}")
    b = _Build(graph)
    x_edge = graph.edges[graph.inputs[0]]
    first = graph.nodes[0] if graph.nodes else None
    if first is None or first.op != "input" or first.inputs != [x_edge.name] or \
            sum(x_edge.name in n.inputs for n in graph.nodes) != 1:
        raise Hls4mlExportError("the graph input must feed exactly one 'input' cast, its first "
                                "node (as qfx.freeze builds it)")
    chw = len(x_edge.shape) == 3
    if len(x_edge.shape) not in (1, 3):
        raise Hls4mlExportError(f"input shape {x_edge.shape}: only (features,) and (C, H, W) "
                                "inputs are supported")
    shape = list(x_edge.shape[1:]) + [x_edge.shape[0]] if chw else list(x_edge.shape)
    name = b.name(first.name)
    b.layers.append({"class_name": "InputLayer", "name": name, "input_shape": shape})
    b.precision[name] = {"result": _hls_type(graph.edges[first.output].type, first, "input")}
    b.tensors[first.output] = _Tensor(name, chw=chw)
    for node in graph.nodes[1:]:
        build = LAYER_BUILDERS.get(node.op)
        if node.op == "hardtanh":
            raise Hls4mlExportError(f"{_label(node)}: hls4ml has no clamp layer with arbitrary "
                                    "bounds; a hardtanh cannot be exported exactly")
        if build is None:
            raise Hls4mlExportError(f"{_label(node)}: op {node.op!r} has no hls4ml translation "
                                    f"(supported: {', '.join(sorted(LAYER_BUILDERS))})")
        if node.op not in ("flatten",):
            for i in node.inputs:
                if i not in b.tensors:
                    raise Hls4mlExportError(f"{_label(node)} reads {i!r} before it is computed")
        build(b, node)
    return b


def _parse(text: str) -> FixedType:
    """Read back the spelling :func:`_hls_type` wrote."""
    return FixedType.parse(text)


def _check_types(model: Any, b: _Build) -> None:
    """Every intended precision must have survived hls4ml's conversion flows unchanged."""
    present = {layer.name: layer for layer in model.get_layers()}
    for name, prec in b.precision.items():
        layer = present.get(name)
        if layer is None:
            if name in b.removable:
                continue
            raise Hls4mlExportError(f"layer {name!r}: hls4ml removed it during conversion, and "
                                    "with it a cast of the frozen model")
        for var, text in prec.items():
            if var == "result":
                got = layer.get_output_variable().type.precision
            else:
                t = layer.get_attr(f"{var}_t")
                got = getattr(t, "precision", None)
            want = _parse(text)
            ok = got is not None and getattr(got, "width", None) == want.width and \
                getattr(got, "integer", None) == want.int_bits and \
                bool(got.signed) == want.signed and \
                str(getattr(got, "rounding_mode", "TRN")) == want.rounding and \
                str(getattr(got, "saturation_mode", "WRAP")) == want.overflow and \
                int(getattr(got, "saturation_bits", 0) or 0) == want.sat_bits
            if not ok:
                raise Hls4mlExportError(f"layer {name!r}: hls4ml changed its {var} type from "
                                        f"{text} to {got}; the export would not be exact")


def build_hls4ml_model(graph: Graph, out_dir: str | os.PathLike[str], *,
                       backend: str = "Vitis", part: str = DEFAULT_PART,
                       clock_period: float = 5.0, project_name: str = "qfx_hls4ml",
                       reuse_factor: int = 1) -> tuple[Any, _Build]:
    """The (not yet compiled) hls4ml ``ModelGraph`` of ``graph`` and the layout bookkeeping.

    Raises :class:`Hls4mlExportError` naming the first layer hls4ml cannot compute exactly.

    Example:
        >>> import tempfile
        >>> from qfx.ir.graph import Edge, Node
        >>> g = Graph(inputs=["x"], outputs=["q"])
        >>> g.add_edge(Edge("x", (3,), FixedType(8, 3)))
        >>> g.add_edge(Edge("q", (3,), FixedType(6, 2, rounding="RND", overflow="SAT")))
        >>> g.add_node(Node("q", "input", ["x"], "q"))
        >>> model, _ = build_hls4ml_model(g, tempfile.mkdtemp())
        >>> str(next(iter(model.get_layers())).get_output_variable().type.precision)
        'fixed<6,2,RND,SAT,0>'
    """
    check_identifier(project_name, "project_name")
    from hls4ml.model import ModelGraph
    from hls4ml.utils.config import create_config

    b = _layer_list(graph)
    config = create_config(output_dir=str(Path(out_dir).resolve()), project_name=project_name,
                           backend=backend, part=part, clock_period=clock_period,
                           io_type="io_parallel")
    config["HLSConfig"] = {
        "Model": {"Precision": "ap_fixed<16,6>", "ReuseFactor": reuse_factor,
                  "Strategy": "Latency", "ChannelsLastConversion": "off"},
        "LayerName": {name: {"Precision": dict(prec)} for name, prec in b.precision.items()},
    }
    out_layer = b.tensors[graph.outputs[0]].layer
    with contextlib.redirect_stdout(io.StringIO()):
        model = ModelGraph.from_layer_list(config, b.layers, inputs=[b.layers[0]["name"]],
                                           outputs=[out_layer])
    _check_types(model, b)
    return model, b


def _default_inputs(graph: Graph, n: int, seed: int) -> np.ndarray:
    """Random inputs spanning the input format, a third of them far outside it (saturation)."""
    e = graph.edges[graph.inputs[0]]
    t = graph.edges[graph.nodes[0].output].type
    rng = np.random.default_rng(seed)
    span = max(abs(t.min), abs(t.max))
    x = rng.standard_normal((n, *e.shape)) * span / 2
    x[: n // 3] *= 8.0
    return x


def export_hls4ml(graph: Graph, out_dir: str | os.PathLike[str],
                  x: np.ndarray | None = None, *, backend: str = "Vitis",
                  part: str = DEFAULT_PART, clock_period: float = 5.0,
                  project_name: str = "qfx_hls4ml", reuse_factor: int = 1,
                  samples: int = 32, seed: int = 0) -> Hls4mlReport:
    """Build, compile and check an hls4ml project of the frozen graph.

    Every hls4ml precision (weights, biases, accumulators, results with their rounding and
    saturation modes) is set from the IR, the project is written to ``out_dir`` and compiled
    with hls4ml's g++ flow (io_parallel), and ``predict`` on ``x`` (default: ``samples``
    random inputs, some saturating) is compared with ``run_graph`` using ``==``.

    Example (compiles C++, a few seconds):
        >>> import tempfile, qfx, torch
        >>> from qfx.nn import QInput, QLinear, QReLU
        >>> net = torch.nn.Sequential(QInput(8), QLinear(4, 3), QReLU())
        >>> with qfx.calibration(net):
        ...     _ = net(torch.randn(64, 4))
        >>> g = qfx.freeze(net.eval(), torch.randn(1, 4))
        >>> export_hls4ml(g, tempfile.mkdtemp()).bit_exact  # doctest: +SKIP
        True
    """
    model, b = build_hls4ml_model(graph, out_dir, backend=backend, part=part,
                                  clock_period=clock_period, project_name=project_name,
                                  reuse_factor=reuse_factor)
    xs = _default_inputs(graph, samples, seed) if x is None else np.asarray(x, dtype=np.float64)
    in_shape = graph.edges[graph.inputs[0]].shape
    if xs.shape[1:] != tuple(in_shape):
        raise ValueError(f"inputs must have shape (batch, {', '.join(map(str, in_shape))}), "
                         f"got {xs.shape}")
    log = io.StringIO()
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(log):
            model.compile()
    except Exception as err:  # hls4ml raises a bare Exception when g++ fails
        raise RuntimeError(f"hls4ml could not compile the project in {out_dir}: {err}\n"
                           f"{log.getvalue()[-4000:]}") from err
    seconds = time.perf_counter() - t0
    feed = xs.transpose(0, 2, 3, 1) if len(in_shape) == 3 else xs
    feed = np.ascontiguousarray(feed.reshape(xs.shape[0], -1), dtype=np.float64)
    with contextlib.redirect_stdout(log):
        pred = np.asarray(model.predict(feed), dtype=np.float64).reshape(xs.shape[0], -1)
    out = b.tensors[graph.outputs[0]]
    out_shape = graph.edges[graph.outputs[0]].shape
    if out.chw:
        c, h, w = out_shape
        pred = pred.reshape(-1, h, w, c).transpose(0, 3, 1, 2)
    elif out.perm is not None:
        ordered = np.empty_like(pred)
        ordered[:, out.perm] = pred
        pred = ordered
    pred = pred.reshape(xs.shape[0], *out_shape)
    ref = run_graph(graph, xs).outputs[0]
    diff = pred != ref
    first = None
    if diff.any():
        s, *rest = np.argwhere(diff)[0]
        flat = int(np.ravel_multi_index(tuple(rest), out_shape)) if rest else 0
        first = (int(s), flat, float(pred[tuple([s, *rest])]), float(ref[tuple([s, *rest])]))
    return Hls4mlReport(Path(out_dir), xs, pred, ref, int(diff.sum()), first,
                        {k: dict(v) for k, v in b.precision.items()}, seconds, log.getvalue(),
                        model)
