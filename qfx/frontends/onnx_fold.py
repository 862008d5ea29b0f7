"""Constant folding for the (Q)ONNX importer, registered into its ``_FOLD`` table: ``Reshape``,
``Transpose``, ``Unsqueeze``, ``Squeeze``, ``Flatten`` and ``Identity`` whose data input is a
constant or a quantized constant are evaluated before any rule sees them
(``_Importer.fold_constant``), so the result is again a (quantized) constant with its raw
integers and format unchanged (Brevitas' quantized BatchNorm reshapes its quantized scale;
TorchScript exports of bias-free linear layers transpose the quantized weight). The folding of
``F.pad``'s shape arithmetic lives with its rules in :mod:`.onnx_window`.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from qfx.frontends.onnx_importer import _FOLD, _axes, _Importer
from qfx.frontends.onnx_values import _attrs

__all__: list[str] = []


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


_FOLD.update({"Reshape": _fold_reshape, "Transpose": _fold_transpose,
              "Unsqueeze": _fold_unsqueeze, "Squeeze": _fold_squeeze, "Flatten": _fold_flatten,
              "Identity": lambda imp, node, arr: arr})
