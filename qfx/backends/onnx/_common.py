"""Shared pieces of the ONNX/QONNX exporters and importer: errors, names, a graph builder and
atomic file writes."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qfx.atomic import atomic_write_bytes
from qfx.fixed.fixed_type import FixedType, cast_needs  # noqa: F401 (re-exported)
from qfx.ir.graph import Graph, Node, pair, sanitize_identifier

__all__ = ["OnnxExportError", "Builder", "maxpool_pads", "save_model_atomic",
           "edge_source", "check_opset", "node_label", "QONNX_DOMAIN",
           "DEFAULT_OPSET", "MIN_OPSET"]

#: Domain of the QONNX custom operators (Quant, BipolarQuant, Trunc).
QONNX_DOMAIN = "qonnx.custom_op.general"
#: Default ONNX opset of the exported models; every op used exists unchanged from opset 13 on.
DEFAULT_OPSET = 17
MIN_OPSET = 13


class OnnxExportError(ValueError):
    """A frozen graph cannot be exported exactly; the message names the node and the reason."""


def node_label(node: Node) -> str:
    """``node 'fc1' (dense)`` — how messages name an IR node."""
    return f"node {node.name!r} ({node.op})"


def edge_source(graph: Graph, node: Node, index: int = 0) -> FixedType | None:
    """The format of a node's input, or None when it is a graph input (an arbitrary double)."""
    name = node.inputs[index]
    return None if name in graph.inputs else graph.edges[name].type


def maxpool_pads(node: Node, in_hw: Sequence[int], out_hw: Sequence[int]) -> list[int]:
    """ONNX MaxPool ``pads`` (top, left, bottom, right) giving torch's windows, ceil_mode
    included: MaxPool ignores padded cells, so end padding that yields the same windows gives
    the same values; onnxruntime refuses padding as large as the kernel."""
    a = node.attrs
    kernel, stride, pad, dil = (pair(a[k]) for k in ("kernel", "stride", "padding", "dilation"))
    ends = []
    for i in range(2):
        k, s, p, d = kernel[i], stride[i], pad[i], dil[i]
        end = max(p, (out_hw[i] - 1) * s + d * (k - 1) + 1 - in_hw[i] - p)
        if end >= k:
            raise OnnxExportError(f"{node_label(node)}: this ceil_mode window layout needs "
                                  f"{end} cells of end padding, which ONNX MaxPool refuses "
                                  f"(padding must be smaller than the kernel {k})")
        ends.append(end)
    return [pad[0], pad[1], ends[0], ends[1]]


def pow2(k: int) -> float:
    """2**k as a float (exact for -1074 <= k <= 1023)."""
    return math.ldexp(1.0, k)


class Builder:
    """Collects nodes, initializers and value infos with unique, sanitized tensor names.

    Every name is derived from an IR name through :func:`qfx.ir.sanitize_identifier`, so the
    ONNX graph reads like the qfx graph (``fc1``, ``fc1__acc``, ``fc1__q``...).
    """

    def __init__(self, elem_type: int = TensorProto.DOUBLE) -> None:
        self.elem_type = elem_type
        self.np_dtype = helper.tensor_dtype_to_np_dtype(elem_type)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.value_info: dict[str, onnx.ValueInfoProto] = {}
        self._names: set[str] = set()
        self._consts: dict[tuple[Any, ...], str] = {}

    def name(self, base: str) -> str:
        """A fresh tensor/node name built from ``base``."""
        ident = sanitize_identifier(base)
        candidate, i = ident, 1
        while candidate in self._names:
            i += 1
            candidate = f"{ident}_{i}"
        self._names.add(candidate)
        return candidate

    def const(self, value: Any, base: str, dtype: Any = None) -> str:
        """An initializer holding ``value`` (float tensors in the builder's element type).

        Scalars and small vectors are shared between uses.
        """
        arr = np.asarray(value, dtype=dtype if dtype is not None else self.np_dtype)
        key = None
        if arr.size <= 8:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            if key in self._consts:
                return self._consts[key]
        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(arr, name))
        if key is not None:
            self._consts[key] = name
        return name

    def int_const(self, values: Sequence[int], base: str) -> str:
        return self.const(np.asarray(values, dtype=np.int64), base, dtype=np.int64)

    def op(self, op_type: str, inputs: Sequence[str], base: str, *, domain: str = "",
           **attrs: Any) -> str:
        """Append one node with a single output named after ``base``; returns that output."""
        out = self.name(base)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out,
                                           domain=domain or None, **attrs))
        return out

    def clamp(self, x: str, lo: str, hi: str, base: str) -> str:
        """``min(max(x, lo), hi)`` as Max and Min, not Clip: onnxruntime fuses a Relu into the
        Clip after it and refuses float64 bounds there ("Unexpected data type for Clip 'min'
        input"), so such a model would not even load."""
        return self.op("Min", [self.op("Max", [x, lo], f"{base}__max"), hi], base)

    def annotate(self, name: str, shape: Sequence[int | str], elem_type: int | None = None,
                 doc: str = "") -> None:
        """Record the type and shape of an intermediate tensor (and a doc string)."""
        vi = helper.make_tensor_value_info(name, elem_type or self.elem_type, list(shape))
        if doc:
            vi.doc_string = doc
        self.value_info[name] = vi


def save_model_atomic(model: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    """Serialize ``model`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    atomic_write_bytes(path, model.SerializeToString())
    return path


def check_opset(opset: int) -> int:
    """Validate the requested default-domain opset."""
    latest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= latest:
        raise OnnxExportError(f"opset must be an integer between {MIN_OPSET} and {latest} (the "
                              f"installed onnx package's newest), got {opset!r}")
    return opset
