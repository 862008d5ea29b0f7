"""How the (Q)ONNX importer reads ONNX values: :class:`OnnxImportError` (raised by every part of
the import), power-of-two scales as exponents, qonnx's rounding modes computed exactly, float
constants as the smallest fixed-point format holding them exactly (or, for a too-wide additive
constant, float32's grid), fixed-point constants aligned on one grid, and the readers of node
attributes (pairs, strings). The bottom of the importer: it imports no other ``onnx_*`` module,
and the importer core and every rule module import from it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx

from qfx.fixed.fixed_type import MAX_WIDTH, FixedType
from qfx.fixed.kernels import FLOAT64_EXACT_BITS

__all__ = ["OnnxImportError"]


class OnnxImportError(ValueError):
    """An ONNX file cannot be imported exactly; the message names the node and the reason."""


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


def _text(a: dict[str, Any], key: str, default: str) -> str:
    v = a.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)
