"""A float ONNX model -> an equivalent float ``torch.nn`` module (for post-training quantisation).

:func:`onnx_to_torch` reads a float CNN/MLP (what ``torch.onnx.export``, Keras/tf2onnx or an
FPGA model zoo typically produce) and rebuilds it as a ``torch.fx.GraphModule`` of standard
modules, which :func:`qfx.ptq` / :func:`qfx.quantize_model` then convert to qfx layers. Supported
ops: Conv (2-D, symmetric pads), Gemm (alpha = beta = 1, transA = 0), MatMul with a constant
weight (an Add of a constant right after becomes its bias), BatchNormalization, Relu, Clip
(constant bounds), Add (of two tensors), MaxPool, AveragePool, GlobalAveragePool, Flatten
(axis 1), Reshape to (N, -1), Identity, Dropout, Constant. Anything else is refused, naming
the node. (Quantised QONNX models go through :func:`qfx.import_onnx` instead, exactly.)
"""

from __future__ import annotations

import operator
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

__all__ = ["onnx_to_torch", "OnnxFloatImportError", "SUPPORTED_OPS"]

class OnnxFloatImportError(ValueError):
    """The ONNX model uses something the float converter does not support."""


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads2d(node: Any, pads: list[int] | None, auto_pad: Any = b"NOTSET") -> tuple[int, int]:
    if auto_pad not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise OnnxFloatImportError(f"node {node.name!r} ({node.op_type}): auto_pad "
                                   f"{auto_pad!r} is not supported; export with explicit pads")
    if not pads:
        return 0, 0
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3]:
        raise OnnxFloatImportError(f"node {node.name!r} ({node.op_type}): only symmetric 2-D "
                                   f"pads are supported, got {list(pads)}")
    return int(pads[0]), int(pads[1])


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32))


class _Converter:
    """The state of one conversion: the fx graph being built, its modules, the ONNX tensors
    seen so far (computed ones in ``env``, constants in ``consts``)."""

    def __init__(self, g: Any, consts: dict[str, np.ndarray], ranks: dict[str, int]) -> None:
        self.consts, self.ranks = consts, ranks
        self.graph = fx.Graph()
        self.modules: dict[str, nn.Module] = {}
        inputs = [i for i in g.input if i.name not in consts]
        if len(inputs) != 1:
            raise OnnxFloatImportError(f"expected one model input, got {len(inputs)}")
        self.env: dict[str, fx.Node] = {inputs[0].name: self.graph.placeholder("x")}
        # a MatMul-built Linear whose bias may still come from the next Add
        self.pending_bias: dict[str, nn.Linear] = {}
        self.used: set[str] = set()

    def name_for(self, node: Any, i: int) -> str:
        base = re.sub(r"\W+", "_", node.name or f"{node.op_type}_{i}").strip("_").lower()
        base = base or f"{node.op_type.lower()}_{i}"
        if base[0].isdigit():
            base = f"n_{base}"
        out, k = base, 1
        while out in self.used:
            k += 1
            out = f"{base}_{k}"
        self.used.add(out)
        return out

    def arg(self, node: Any, k: int) -> fx.Node:
        name = node.input[k]
        if name not in self.env:
            raise OnnxFloatImportError(f"node {node.name!r} ({node.op_type}): input {name!r} "
                                       "is a constant or unknown where a tensor is expected")
        return self.env[name]

    def const(self, node: Any, k: int) -> np.ndarray | None:
        if len(node.input) <= k or not node.input[k]:
            return None
        if node.input[k] not in self.consts:
            raise OnnxFloatImportError(f"node {node.name!r} ({node.op_type}): input "
                                       f"{node.input[k]!r} must be a constant")
        return self.consts[node.input[k]]

    def add_module(self, node: Any, i: int, m: nn.Module) -> fx.Node:
        """``m`` applied to the node's first input, as the node's output."""
        name = self.name_for(node, i)
        self.modules[name] = m
        return self.graph.call_module(name, (self.arg(node, 0),))

    # ------------------------------------------------------------------ one rule per op
    # Each returns the fx node of the op's output, or None when it only recorded a constant
    # or an alias.
    def constant(self, node: Any, i: int, a: dict[str, Any]) -> None:
        from onnx import numpy_helper

        value = a.get("value")
        if value is None:
            raise OnnxFloatImportError(f"node {node.name!r} (Constant): only 'value' "
                                       "constants are supported")
        self.consts[node.output[0]] = numpy_helper.to_array(value)

    def conv(self, node: Any, i: int, a: dict[str, Any]) -> fx.Node:
        w, b = self.const(node, 1), self.const(node, 2)
        if w.ndim != 4:
            raise OnnxFloatImportError(f"node {node.name!r} (Conv): only 2-D convolutions "
                                       f"are supported, weight rank {w.ndim}")
        conv = nn.Conv2d(w.shape[1] * int(a.get("group", 1)), w.shape[0], w.shape[2:],
                         tuple(a.get("strides", (1, 1))),
                         _pads2d(node, a.get("pads"), a.get("auto_pad", b"NOTSET")),
                         tuple(a.get("dilations", (1, 1))), int(a.get("group", 1)),
                         bias=b is not None)
        with torch.no_grad():
            conv.weight.copy_(_t(w))
            if b is not None:
                conv.bias.copy_(_t(b))
        return self.add_module(node, i, conv)

    def gemm(self, node: Any, i: int, a: dict[str, Any]) -> fx.Node:
        if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
            raise OnnxFloatImportError(f"node {node.name!r} (Gemm): only alpha = beta = 1 "
                                       "and transA = 0 are supported")
        w, b = self.const(node, 1), self.const(node, 2)
        w = w if a.get("transB", 0) else w.T
        lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
        with torch.no_grad():
            lin.weight.copy_(_t(w))
            if b is not None:
                lin.bias.copy_(_t(np.broadcast_to(b, (w.shape[0],))))
        return self.add_module(node, i, lin)

    def matmul(self, node: Any, i: int, a: dict[str, Any]) -> fx.Node:
        w = self.const(node, 1)
        if w is None or w.ndim != 2:
            raise OnnxFloatImportError(f"node {node.name!r} (MatMul): the second input "
                                       "must be a constant 2-D weight")
        lin = nn.Linear(w.shape[0], w.shape[1], bias=True)
        with torch.no_grad():
            lin.weight.copy_(_t(w.T))
            lin.bias.zero_()
        self.pending_bias[node.output[0]] = lin
        return self.add_module(node, i, lin)

    def add(self, node: Any, i: int, a: dict[str, Any]) -> fx.Node | None:
        c0, c1 = node.input[0] in self.consts, node.input[1] in self.consts
        if not (c0 or c1):
            return self.graph.call_function(operator.add, (self.arg(node, 0), self.arg(node, 1)))
        x_name, c = (node.input[1], self.consts[node.input[0]]) if c0 else (
            node.input[0], self.consts[node.input[1]])
        lin = self.pending_bias.pop(x_name, None)
        if lin is None or c.size != lin.out_features:
            raise OnnxFloatImportError(f"node {node.name!r} (Add): adding a constant "
                                       "is supported only as the bias of a MatMul")
        with torch.no_grad():
            lin.bias.copy_(_t(c.reshape(-1)))
        self.env[node.output[0]] = self.env[x_name]
        return None

    def batchnorm(self, node: Any, i: int, a: dict[str, Any]) -> fx.Node:
        scale, bias, mean, var = (self.const(node, k) for k in range(1, 5))
        cls = nn.BatchNorm2d if self.ranks.get(node.input[0], 4) == 4 else nn.BatchNorm1d
        bn = cls(len(scale), eps=float(a.get("epsilon", 1e-5)))
        with torch.no_grad():
            for p, v in ((bn.weight, scale), (bn.bias, bias), (bn.running_mean, mean),
                         (bn.running_var, var)):
                p.copy_(_t(v))
        return self.add_module(node, i, bn.eval())

    def relu(self, node: Any, i: int, a: dict[str, Any]) -> fx.Node:
        return self.add_module(node, i, nn.ReLU())

    def clip(self, node: Any, i: int, a: dict[str, Any]) -> fx.Node:
        lo = a.get("min", self.const(node, 1))
        hi = a.get("max", self.const(node, 2))
        if lo is None or hi is None:
            raise OnnxFloatImportError(f"node {node.name!r} (Clip): needs constant min and max")
        lo, hi = float(np.asarray(lo)), float(np.asarray(hi))
        return self.add_module(node, i, nn.ReLU6() if (lo, hi) == (0.0, 6.0) else
                               nn.Hardtanh(lo, hi))

    def pool(self, node: Any, i: int, a: dict[str, Any]) -> fx.Node:
        op = node.op_type
        k = tuple(a["kernel_shape"])
        s = tuple(a.get("strides", k))
        pad = _pads2d(node, a.get("pads"), a.get("auto_pad", b"NOTSET"))
        if len(k) != 2 or a.get("ceil_mode", 0):
            raise OnnxFloatImportError(f"node {node.name!r} ({op}): only 2-D pooling "
                                       "without ceil_mode is supported")
        if op == "AveragePool":
            return self.add_module(node, i, nn.AvgPool2d(
                k, s, pad, count_include_pad=bool(a.get("count_include_pad", 0))))
        if tuple(a.get("dilations", (1, 1))) != (1, 1):
            raise OnnxFloatImportError(f"node {node.name!r} (MaxPool): dilation is not "
                                       "supported")
        return self.add_module(node, i, nn.MaxPool2d(k, s, pad))

    def global_avgpool(self, node: Any, i: int, a: dict[str, Any]) -> fx.Node:
        return self.add_module(node, i, nn.AdaptiveAvgPool2d(1))

    def flatten(self, node: Any, i: int, a: dict[str, Any]) -> fx.Node:
        if a.get("axis", 1) != 1:
            raise OnnxFloatImportError(f"node {node.name!r} (Flatten): only axis=1 is "
                                       "supported")
        return self.add_module(node, i, nn.Flatten())

    def reshape(self, node: Any, i: int, a: dict[str, Any]) -> fx.Node:
        shape = self.const(node, 1)
        if shape is None or shape.size != 2 or not (shape[1] == -1 or shape[0] in (-1, 0)):
            raise OnnxFloatImportError(f"node {node.name!r} (Reshape): only a reshape to "
                                       f"(N, -1) is supported, got {shape}")
        return self.add_module(node, i, nn.Flatten())

    def identity(self, node: Any, i: int, a: dict[str, Any]) -> None:
        if node.input[0] in self.consts:  # exporters alias shared weights through Identity
            self.consts[node.output[0]] = self.consts[node.input[0]]
        else:
            self.env[node.output[0]] = self.arg(node, 0)

    def finish(self, g: Any) -> fx.GraphModule:
        outs = []
        for o in g.output:
            if o.name not in self.env:
                raise OnnxFloatImportError(f"model output {o.name!r} is not computed from the "
                                           "input")
            outs.append(self.env[o.name])
        self.graph.output(outs[0] if len(outs) == 1 else tuple(outs))
        root = nn.Module()
        for name, m in self.modules.items():
            root.add_module(name, m)
        return fx.GraphModule(root, self.graph, class_name="OnnxFloatModel").eval()


#: ONNX op type -> the converter's rule for it.
_RULES = {"Constant": _Converter.constant, "Conv": _Converter.conv, "Gemm": _Converter.gemm,
          "MatMul": _Converter.matmul, "Add": _Converter.add,
          "BatchNormalization": _Converter.batchnorm, "Relu": _Converter.relu,
          "Clip": _Converter.clip, "MaxPool": _Converter.pool, "AveragePool": _Converter.pool,
          "GlobalAveragePool": _Converter.global_avgpool, "Flatten": _Converter.flatten,
          "Reshape": _Converter.reshape, "Identity": _Converter.identity,
          "Dropout": _Converter.identity}
SUPPORTED_OPS = tuple(_RULES)


def onnx_to_torch(model: str | Path | Any) -> fx.GraphModule:
    """Convert a float ONNX model (a path or an ``onnx.ModelProto``) to a float torch module.

    Example:
        >>> import io, onnx
        >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU()).eval()
        >>> buf = io.BytesIO()
        >>> torch.onnx.export(net, torch.zeros(1, 4), buf, dynamo=False)
        >>> back = onnx_to_torch(onnx.load_from_string(buf.getvalue()))
        >>> torch.allclose(back(torch.ones(2, 4)), net(torch.ones(2, 4)))
        True
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX file")
        try:
            model = onnx.load(str(path))
        except Exception as err:
            raise OnnxFloatImportError(f"{path}: not a readable ONNX file ({err})") from None
    try:
        model = shape_inference.infer_shapes(model)
    except Exception:  # shapes only refine BatchNorm's rank; go on without them
        pass
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    ranks = {vi.name: len(vi.type.tensor_type.shape.dim)
             for vi in [*g.value_info, *g.input, *g.output]
             if vi.type.tensor_type.HasField("shape")}
    conv = _Converter(g, consts, ranks)
    for i, node in enumerate(g.node):
        rule = _RULES.get(node.op_type)
        if rule is None:
            raise OnnxFloatImportError(f"node {node.name!r}: op {node.op_type} is not supported "
                                       f"by the float ONNX converter (supported: "
                                       f"{', '.join(SUPPORTED_OPS)})")
        out = rule(conv, node, i, _attrs(node))
        if out is not None:
            conv.env[node.output[0]] = out
    return conv.finish(g)
