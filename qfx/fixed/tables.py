"""Table functions: the exact value of ``sigmoid``, ``tanh``, ``exp``, ``exp_neg`` (exp(-x)) or
``recip`` (1/x) at fixed-point inputs, quantised onto an output :class:`FixedType` with its
rounding and overflow modes -- the one definition of every lookup table qfx builds.

:func:`quantized_function` evaluates the function at given values (what a qfx.nn layer does in
eval); :func:`function_table` evaluates it at every code of an input type, in the order the
hardware indexes the table (the input's raw bits read as an unsigned integer); the IR stores that
table, the executor and the C++ read it. Both call the same code, so a table entry is by
construction the layer's eval output for that input.

Exactness. ``recip`` is rational: computed with integers. ``sigmoid``, ``tanh`` and ``exp`` at a
non-zero dyadic rational are transcendental (Lindemann-Weierstrass), so they never lie on a
rounding boundary; at 0 they are 1/2, 0, 1 exactly. Every value is first computed in float64
and kept when it is provably far (2**-40 relative) from every rounding boundary of the output grid
(grid points and midpoints); otherwise, and for values beyond float64's exact integer range, it is
bracketed with mpmath interval arithmetic at increasing precision until the bracket lies strictly
between two boundaries (or is a single exact point). The result is floor(v * 2**(F+1)) plus a
sticky bit, turned into the raw output by the ap_fixed requantisation of :mod:`qfx.fixed.exact`
(the same code every other cast uses).

Example:
    >>> from qfx.fixed.fixed_type import FixedType
    >>> x_t = FixedType(3, 2)                     # codes -2.0 .. 1.5 by 0.5
    >>> out_t = FixedType(6, 1, False, "RND", "SAT")
    >>> function_table("sigmoid", x_t, out_t).tolist()   # index = raw bits of the input
    [16, 20, 23, 26, 4, 6, 9, 12]
    >>> check_table_width(16, "layer 'sig' input ap_fixed<16,4>")
    Traceback (most recent call last):
    ...
    ValueError: layer 'sig' input ap_fixed<16,4>: 16 bits would need a table of 65536 entries, ...
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache

import mpmath
import numpy as np
import torch

from qfx.fixed.exact import requantize
from qfx.fixed.fixed_type import FixedType

__all__ = ["DEFAULT_TABLE_MAX_BITS", "TABLE_FUNCTIONS", "check_table_width", "function_table",
           "quantized_function", "table_codes", "table_index"]

#: The widest input a table may be indexed by (2**14 entries) unless configured otherwise.
DEFAULT_TABLE_MAX_BITS = 14
#: The functions a table can hold.
TABLE_FUNCTIONS = ("sigmoid", "tanh", "exp", "exp_neg", "recip")

_MARGIN = 2.0 ** -40  # relative distance from a boundary at which float64 is trusted
_FLOAT_SAFE = 2.0 ** 50  # |v * 2**(F+1)| below this: float64 floor is exact enough


def check_table_width(width: int, where: str, max_bits: int = DEFAULT_TABLE_MAX_BITS) -> None:
    """Refuse a table over a ``width``-bit index wider than ``max_bits`` (one line naming
    ``where`` and the cast that fixes it)."""
    if width > max_bits:
        raise ValueError(
            f"{where}: {width} bits would need a table of {1 << width} entries, more than the "
            f"limit of 2**{max_bits}; cast the input to a narrower format first (a narrower "
            "act_width in QConfig, or a narrower input format) or raise the limit "
            "(QConfig.table_max_bits)")


def table_codes(t: FixedType) -> np.ndarray:
    """The raw input of each table entry: entry ``u`` is the code whose raw bits, read as an
    unsigned W-bit integer, are ``u`` (two's complement for signed types).

    Example:
        >>> table_codes(FixedType(2, 2)).tolist()
        [0, 1, -2, -1]
    """
    u = np.arange(1 << t.width, dtype=np.int64)
    if t.signed:
        u = np.where(u >= 1 << (t.width - 1), u - (1 << t.width), u)
    return u


def table_index(raw: np.ndarray | torch.Tensor, t: FixedType) -> np.ndarray | torch.Tensor:
    """The table index of raw input values of ``t`` (their low W bits)."""
    return raw & ((1 << t.width) - 1)


# ---------------------------------------------------------------------- the exact values
def _float64(fn: str, x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if fn == "sigmoid":
            return 1.0 / (1.0 + np.exp(-x))
        if fn == "tanh":
            return np.tanh(x)
        if fn == "exp":
            return np.exp(x)
        if fn == "exp_neg":
            return np.exp(-x)
        return 1.0 / x


def _interval(fn: str, x: Fraction, prec: int):
    iv = mpmath.iv
    iv.prec = prec
    v = iv.mpf(x.numerator) / x.denominator if x.denominator != 1 else iv.mpf(x.numerator)
    if fn == "sigmoid":
        return 1 / (1 + iv.exp(-v))
    if fn == "tanh":
        return 1 - 2 / (iv.exp(2 * v) + 1)
    return iv.exp(v if fn == "exp" else -v)


def _floor_sticky_exact(fn: str, x: Fraction, frac: int) -> tuple[int, bool]:
    """floor(f(x) * 2**frac) and whether f(x) * 2**frac is not an integer, exactly."""
    if fn == "recip":
        if x == 0:
            raise ZeroDivisionError
        y = Fraction(1) / x * Fraction(2) ** frac
        return math.floor(y), y.denominator != 1
    # magnitude of the result in bits (exp(|x|) at most), so the bracket resolves integers
    mag = int(abs(x) * 1.4427) + 8 if fn == "exp" else 8
    prec = 64 + max(frac, 0) + mag
    while True:
        v = _interval(fn, x, prec)
        (fa, ea), (fb, eb) = (_floor_of(t, frac) for t in v._mpi_)  # exact, on raw mpf tuples
        if v._mpi_[0] == v._mpi_[1] and ea:
            return fa, False
        if fa == fb and not ea:
            return fa, True
        prec *= 2
        if prec > 1 << 20:  # pragma: no cover - a transcendental value cannot sit on the grid
            raise ArithmeticError(f"cannot resolve {fn}({x}) on a 2**-{frac} grid")


def _floor_of(t: tuple, frac: int) -> tuple[int, bool]:
    """floor(m * 2**frac) of a raw mpf tuple m = (sign, man, exp, bc), and whether it is exact."""
    sign, man, exp, _ = t
    e = exp + frac
    if man == 0:
        return 0, True
    if e >= 0:
        return (-(man << e) if sign else man << e), True
    q, exact = man >> -e, man & ((1 << -e) - 1) == 0
    if sign:
        return (-q if exact else -q - 1), exact
    return q, exact


def _floor_sticky(fn: str, values: np.ndarray, frac: int) -> tuple[list[int], list[bool]]:
    """Per value: floor(f(v) * 2**frac) and the sticky bit (float64 where provably right)."""
    y = np.ldexp(_float64(fn, values), frac)
    with np.errstate(invalid="ignore"):
        near = np.abs(y - np.round(y))
    ok = np.isfinite(y) & (np.abs(y) < _FLOAT_SAFE) & (near > (np.abs(y) + 1.0) * _MARGIN)
    if fn == "recip":
        ok &= values != 0
    floors = np.floor(np.where(ok, y, 0.0)).astype(np.int64).tolist()
    sticky = [True] * len(floors)
    for i in np.flatnonzero(~ok).tolist():
        x = Fraction(float(values[i]))
        if fn == "recip" and x == 0:  # 1/0: the largest value of the output type (see table)
            floors[i], sticky[i] = None, False
            continue
        floors[i], sticky[i] = _floor_sticky_exact(fn, x, frac)
    return floors, sticky


def _requantize_big(n: list, sticky: list[bool], out_t: FixedType) -> np.ndarray:
    """Raw values of ``out_t`` for v = (n + sticky/2) * 2**-(F+1): the mantissa on the grid
    F + 2 is 2n (exact) or 2n + 1 (strictly between two boundaries)."""
    w = out_t.width
    keep = 1 << (w + 4)  # enough low bits for every wrap mode; the sign and overflow are kept
    m = []
    for k, s in zip(n, sticky, strict=True):
        if k is None:
            m.append(None)
            continue
        v = 2 * k + (1 if s else 0)
        if abs(v) >= 1 << 60:
            low = v % keep
            v = low + keep if v > 0 else low - 2 * keep
        m.append(v)
    ints = torch.tensor([0 if v is None else v for v in m], dtype=torch.int64)
    raw = requantize(ints, -2, width=w, signed=out_t.signed, rounding=out_t.rounding,
                     overflow=out_t.overflow, sat_bits=out_t.sat_bits).numpy()
    for i, v in enumerate(m):
        if v is None:
            raw[i] = out_t.raw_max
    return raw


def quantized_function(fn: str, values: np.ndarray | torch.Tensor, out_t: FixedType
                       ) -> np.ndarray | torch.Tensor:
    """Raw int64 values of ``out_t`` holding fn(v) for each float64 value ``v``, quantised
    with ``out_t``'s rounding and overflow modes (``recip`` of 0 gives ``out_t``'s largest
    value). Returns the caller's container type (numpy or torch, on its device).

    Example:
        >>> quantized_function("exp", np.array([0.0, 1.0]), FixedType(8, 3, False, "RND")).tolist()
        [32, 87]
    """
    if fn not in TABLE_FUNCTIONS:
        raise ValueError(f"unknown table function {fn!r}; known: {', '.join(TABLE_FUNCTIONS)}")
    is_torch = isinstance(values, torch.Tensor)
    arr = values.detach().cpu().double().numpy() if is_torch else np.asarray(values, np.float64)
    uniq, inverse = np.unique(arr, return_inverse=True)
    raw_u = _cached(fn, out_t, uniq.tobytes())
    raw = raw_u[inverse].reshape(arr.shape)
    if is_torch:
        return torch.from_numpy(raw).to(values.device)
    return raw


@lru_cache(maxsize=256)
def _cached(fn: str, out_t: FixedType, values: bytes) -> np.ndarray:
    v = np.frombuffer(values, dtype=np.float64)
    n, sticky = _floor_sticky(fn, v, out_t.frac_bits + 1)
    raw = _requantize_big(n, sticky, out_t)
    raw.setflags(write=False)
    return raw


@lru_cache(maxsize=64)
def function_table(fn: str, in_t: FixedType, out_t: FixedType) -> np.ndarray:
    """The table of ``fn`` over every code of ``in_t`` (index: the input's raw bits as an
    unsigned integer, see :func:`table_codes`), as raw int64 values of ``out_t``; read-only,
    computed once per (function, input type, output type).

    Example:
        >>> function_table("tanh", FixedType(2, 1), FixedType(4, 1, rounding="RND")).tolist()
        [0, 4, -6, -4]
    """
    codes = table_codes(in_t)
    raw = np.asarray(quantized_function(fn, in_t.from_int(codes), out_t), dtype=np.int64)
    raw = raw.copy()
    raw.setflags(write=False)
    return raw
