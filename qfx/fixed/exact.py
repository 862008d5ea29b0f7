"""Exact, vectorised twin of the ap_fixed conversion routines (int64 arithmetic only).

`ap_fixed_base(double)` and `ap_fixed_base::operator=(ap_fixed_base<...>)` in the headers
shipped with hls4ml share one algorithm: shift the source mantissa onto the target grid,
apply the quantisation increment computed from the first dropped bit (``qb``) and the OR of
the others (``r``), then detect overflow/underflow and rewrite the bits as the overflow mode
says. This module reproduces that algorithm on int64 tensors, element by element, without
ever forming an integer wider than 64 bits: shifts are clamped where the header's answer no
longer depends on the exact amount.

A source value is given as ``m * 2**e`` with ``m`` an int64 (|m| < 2**62) and the target
raw integer is ``m * 2**(e + F)`` rounded and wrapped, ``F`` the target's fractional bits.
``shift = e + F`` may differ per element (doubles carry their own exponent).
"""

from __future__ import annotations

import torch

__all__ = ["decompose_double", "requantize", "quantize_double"]

_I64 = torch.int64


def _pow2(k: torch.Tensor) -> torch.Tensor:
    """2**k for an int64 tensor 0 <= k <= 62."""
    return torch.bitwise_left_shift(torch.ones_like(k), k)


def decompose_double(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split float64 values into (m, e) with x == m * 2**e exactly, |m| < 2**53.

    Infinities are read the way the ap_fixed headers read them (a mantissa of 1.0 with the
    all-ones exponent, i.e. +-2**1024); NaN is rejected because the headers give it no value.
    """
    if x.dtype != torch.float64:
        x = x.to(torch.float64)  # float32/16 -> float64 is exact
    if torch.isnan(x).any():
        raise ValueError("cannot convert NaN to a fixed-point number (ap_fixed gives it no value)")
    mant, ex = torch.frexp(x)  # x = mant * 2**ex with 0.5 <= |mant| < 1, subnormals normalised
    inf = torch.isinf(x)
    if inf.any():
        mant = torch.where(inf, torch.sign(x) * 0.5, mant)
        ex = torch.where(inf, torch.full_like(ex, 1025), ex)
    m = (mant * 2.0**53).to(_I64)  # exact: 53 significant bits
    e = ex.to(_I64) - 53
    return m, e


def requantize(
    m: torch.Tensor,
    shift: torch.Tensor | int,
    *,
    width: int,
    signed: bool,
    rounding: str,
    overflow: str,
    sat_bits: int,
) -> torch.Tensor:
    """Raw int64 mantissa of ``ap_fixed<width, ., rounding, overflow, N>`` holding m * 2**shift.

    ``shift`` is the number of positions the source integer moves left onto the target grid
    (negative: right, dropping bits that the rounding mode resolves). Signed results are the
    two's-complement value, unsigned results lie in [0, 2**width).
    """
    W = width
    shift = torch.as_tensor(shift, dtype=_I64, device=m.device)
    m, shift = torch.broadcast_tensors(m.to(_I64), shift)

    raw_max = (1 << (W - 1)) - 1 if signed else (1 << W) - 1
    raw_min = -(1 << (W - 1)) if signed else 0
    # AP_SAT_SYM on a signed target treats the most negative code as an underflow too and
    # writes -max; at W == 1 the header's "-max" pattern (1 << (W-1)) | 1 is the minimum, -1.
    symmetric = signed and overflow == "SAT_SYM" and W > 1
    floor_min = -raw_max if symmetric else raw_min
    pattern_mask = (1 << W) - 1
    neg_src = m < 0

    # --- left shift: no quantisation, the exact result may be far wider than 64 bits -------
    sl = shift.clamp(0, 63)
    kept_bits = (W - sl).clamp(min=0)
    v_left = torch.bitwise_left_shift(m & (_pow2(kept_bits.clamp(max=62)) - 1), sl.clamp(max=62))
    v_left = torch.where(kept_bits > 0, v_left, torch.zeros_like(v_left))
    ovf_left = m > (raw_max >> sl)
    udf_left = m < -((-floor_min) >> sl)
    ld_left = torch.where(sl <= W, (m >> (W - sl).clamp(0, 63)) & 1, torch.zeros_like(m))

    # --- right shift: drop k bits, round with (qb, r) exactly as quantization_adjust does ---
    k = (-shift).clamp(1, 63)
    q0 = m >> k
    qb = ((m >> (k - 1)) & 1).bool()
    r = (m & (_pow2(k - 1) - 1)) != 0
    inc = _increment(rounding, qb, r, neg_src, q0)
    q = q0 + inc.to(_I64)
    ovf_right = q > raw_max
    udf_right = q < floor_min
    ld_right = (q0 >> min(W, 63)) & 1

    left = shift >= 0
    v = torch.where(left, v_left, q & pattern_mask)
    ovf = torch.where(left, ovf_left, ovf_right)
    udf = torch.where(left, udf_left, udf_right)
    ld = torch.where(left, ld_left, ld_right).bool()
    neg = torch.where(left, neg_src, q < 0)

    v = _apply_overflow(v, ovf, udf, ld, neg, W=W, signed=signed, overflow=overflow, N=sat_bits,
                        raw_max=raw_max, floor_min=floor_min)
    if signed:
        v = torch.where(v > raw_max, v - (1 << W), v)
    return v


def _increment(
    rounding: str, qb: torch.Tensor, r: torch.Tensor, neg: torch.Tensor, q0: torch.Tensor
) -> torch.Tensor:
    """The +1 that ap_fixed's quantization_adjust adds to the truncated value."""
    if rounding == "TRN":
        return torch.zeros_like(qb)
    if rounding == "RND":
        return qb
    if rounding == "RND_ZERO":
        return qb & (neg | r)
    if rounding == "RND_MIN_INF":
        return qb & r
    if rounding == "RND_INF":
        return qb & (~neg | r)
    if rounding == "RND_CONV":
        return qb & (((q0 & 1) == 1) | r)
    if rounding == "TRN_ZERO":
        return neg & (qb | r)
    raise ValueError(f"unknown rounding mode {rounding!r}")


def _set_bits(v: torch.Tensor, lo: int, hi: int, ones: torch.Tensor) -> torch.Tensor:
    """Set bits lo..hi (inclusive) of v to all ones where ``ones`` else to zeros."""
    if hi < lo:
        return v
    mask = ((1 << (hi - lo + 1)) - 1) << lo
    return torch.where(ones, v | mask, v & ~mask)


def _apply_overflow(
    v: torch.Tensor,
    ovf: torch.Tensor,
    udf: torch.Tensor,
    ld: torch.Tensor,
    neg: torch.Tensor,
    *,
    W: int,
    signed: bool,
    overflow: str,
    N: int,
    raw_max: int,
    floor_min: int,
) -> torch.Tensor:
    """ap_fixed_base::overflow_adjust on W-bit patterns (v in [0, 2**W))."""
    hit = ovf | udf
    full = (1 << W) - 1
    if overflow == "WRAP":
        if N == 0:
            return v
        if signed:
            w = torch.where(neg, v | (1 << (W - 1)), v & ~(1 << (W - 1)))
            w = _set_bits(w, W - N, W - 2, ~neg)
        else:
            w = _set_bits(v, W - N, W - 1, torch.ones_like(neg))
        return torch.where(hit, w, v)
    if overflow == "SAT_ZERO":
        return torch.where(hit, torch.zeros_like(v), v)
    if overflow == "WRAP_SM":
        if not signed:
            raise ValueError("AP_WRAP_SM needs a signed type")
        ro = ((v >> (W - 1)) & 1).bool()
        msb = 1 << (W - 1)
        if N == 0:
            w = torch.where(ld != ro, v ^ full, v)
            w = torch.where(ld, w | msb, w & ~msb)
        else:
            if N == 1:
                w = torch.where(neg != ro, v ^ full, v)
            else:
                lno = ((v >> (W - N)) & 1).bool()
                w = torch.where(lno == neg, v ^ full, v)
                w = _set_bits(w, W - N, W - 2, ~neg)
            w = torch.where(neg, w | msb, w & ~msb)
        return torch.where(hit, w, v)
    # saturating modes: SAT, SAT_SYM (the underflow bound is already -max where symmetric)
    v = torch.where(ovf, torch.full_like(v, raw_max), v)
    return torch.where(udf, torch.full_like(v, floor_min & full), v)


# The float64 fast path is exact for these: y = x * 2**F is exact (a power-of-two scale) unless
# a nonzero x lands below the normal range (F < 0 can do that; such inputs take the integer
# path). Rounding works on the magnitude: a = |y|, n = floor(a) and the dropped
# fraction g = a - n are exact for every double (Sterbenz), while y - floor(y) is not for small
# negative y, nor is y + 0.5 (0.5 - 2**-54 + 0.5 rounds to 1.0). Each mode's decision is then a
# comparison of g with 1/2, like quantization_adjust decides from (qb, r). Any |y| beyond the
# format saturates: the widest fast-path format holds less than 2**50.
_FAST_OVERFLOW = ("SAT", "SAT_SYM", "SAT_ZERO")
_FAST_MAX_WIDTH = 50


def _round_float64(y: torch.Tensor, rounding: str) -> torch.Tensor:
    neg = y < 0
    a = y.abs()
    n = torch.floor(a)
    g = a - n  # NaN only for +-inf, which then compares False everywhere
    if rounding == "TRN":
        inc = neg & (g > 0)
    elif rounding == "TRN_ZERO":
        inc = torch.zeros_like(neg)
    elif rounding == "RND_CONV":
        inc = (g > 0.5) | ((g == 0.5) & (torch.remainder(n, 2.0) == 1.0))
    else:
        # does a tie move the magnitude up? RND: ties toward +inf; RND_INF: away from zero;
        # RND_MIN_INF: toward -inf; RND_ZERO: toward zero
        tie_up = {"RND": ~neg, "RND_INF": torch.ones_like(neg), "RND_MIN_INF": neg,
                  "RND_ZERO": torch.zeros_like(neg)}.get(rounding)
        if tie_up is None:
            raise ValueError(f"unknown rounding mode {rounding!r}")
        inc = (g > 0.5) | ((g == 0.5) & tie_up)
    mag = n.add_(inc.to(n.dtype))
    return torch.where(neg, -mag, mag)


def fast_path_applies(width: int, overflow: str) -> bool:
    """Whether :func:`quantize_double` may use the float64 formulas for this format (it still
    takes the integer path for inputs that a negative ``frac_bits`` scales below the normal
    range, see above)."""
    return overflow in _FAST_OVERFLOW and width <= _FAST_MAX_WIDTH


def _scaled_exactly(x: torch.Tensor, y: torch.Tensor, frac_bits: torch.Tensor | int) -> bool:
    """Whether ``y = ldexp(x, frac_bits)`` is exact: no scaling down, or no nonzero x sent
    below the smallest normal double (an infinity times an underflowed 2**frac_bits is NaN:
    caught too)."""
    if bool((torch.as_tensor(frac_bits) >= 0).all()):
        return True
    return not bool(((x != 0) & ~(y.abs() >= 2.0**-1022)).any())


def quantize_double(
    x: torch.Tensor,
    frac_bits: torch.Tensor | int,
    *,
    width: int,
    signed: bool,
    rounding: str,
    overflow: str,
    sat_bits: int,
    fast: bool = True,
) -> torch.Tensor:
    """Raw int64 mantissas of ``T v = (double)x`` for the format with ``frac_bits`` (which may
    be a tensor broadcasting against x, e.g. one value per channel).

    Uses exact float64 arithmetic where it is proven exact (saturating modes, width <= 50,
    ``x * 2**frac_bits`` in the normal range) and the integer twin of the header algorithm
    everywhere else.
    """
    if fast and fast_path_applies(width, overflow):
        x = x.to(torch.float64)
        if torch.isnan(x).any():
            raise ValueError("cannot convert NaN to a fixed-point number (ap_fixed gives it no "
                             "value)")
        y = torch.ldexp(x, torch.as_tensor(frac_bits, dtype=torch.float64, device=x.device))
        if _scaled_exactly(x, y, frac_bits):
            return _saturate_float64(_round_float64(y, rounding), width=width, signed=signed,
                                     overflow=overflow)
    m, e = decompose_double(x)
    return requantize(m, e + frac_bits, width=width, signed=signed, rounding=rounding,
                      overflow=overflow, sat_bits=sat_bits)


def _saturate_float64(q: torch.Tensor, *, width: int, signed: bool, overflow: str
                      ) -> torch.Tensor:
    """Integer-valued doubles ``q`` saturated (or zeroed) into the format, as int64."""
    raw_max = float((1 << (width - 1)) - 1 if signed else (1 << width) - 1)
    raw_min = float(-(1 << (width - 1)) if signed else 0)
    if overflow == "SAT_ZERO":
        q = torch.where((q > raw_max) | (q < raw_min), torch.zeros_like(q), q)
    else:
        low = -raw_max if (overflow == "SAT_SYM" and signed and width > 1) else raw_min
        q = q.clamp_(low, raw_max)
    return q.to(torch.int64)
