"""(Q)ONNX importer rules for layers and pooling, registered into
:data:`qfx.frontends.onnx.IMPORTERS`: ``Gemm`` / ``MatMul`` (the IR ``dense``, or
``binary_dense`` for +-1 weights on a -1/+1 tensor), the 2-D ``Conv`` rule (``conv2d`` /
``binary_conv2d``; registered for ``Conv`` by :mod:`.onnx_window`, which takes the 1-D case),
``Pad`` (a binary convolution's -1 padding, or the IR ``pad``), ``MaxPool``, ``GlobalAveragePool``
/ ``GlobalMaxPool`` and ``ReduceMean`` / ``ReduceMax`` over H and W (one pooling window over the
plane), ``Flatten`` / ``Reshape`` to (batch, features), ``Concat`` on the channel axis and nearest
``Resize`` (the IR ``upsample``). Kept together because they share the weighted-layer and pooling
node builders (which :mod:`.onnx_window` and :mod:`.onnx_elementwise` reuse).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx

from qfx.fixed.fixed_type import MAX_WIDTH, FixedType
from qfx.frontends.onnx_importer import IMPORTERS, _axes, _Importer, _Value
from qfx.frontends.onnx_values import OnnxImportError, _attrs, _pair_from, _text
from qfx.ir.ops.pooling import AvgPool2d

__all__: list[str] = []


# ---------------------------------------------------------------------- dense, conv, pad
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


# ---------------------------------------------------------------------- pooling
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


# ---------------------------------------------------------------------- Flatten, Concat, Resize
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


#: Resize coordinate modes (and their nearest rounding) that read x[floor(o / s)] for an
#: integer factor s: asymmetric + floor (PyTorch's export), and half_pixel with either rounding
#: ((o + 1/2) / s - 1/2 is never a tie for an integer s).
_NEAREST_FLOOR = {("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"),
                  ("half_pixel", "round_prefer_ceil"), ("pytorch_half_pixel", "round_prefer_floor"),
                  ("pytorch_half_pixel", "round_prefer_ceil")}


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


# Conv is registered by onnx_window: its rule takes 1-D convolutions and hands every other
# Conv to _conv above
IMPORTERS.update({"Gemm": _gemm, "MatMul": _gemm, "Pad": _pad, "MaxPool": _maxpool,
                  "GlobalAveragePool": _global_pool, "GlobalMaxPool": _global_pool,
                  "ReduceMean": _global_pool, "ReduceMax": _global_pool, "Flatten": _flatten,
                  "Reshape": _flatten, "Concat": _concat, "Resize": _resize})
