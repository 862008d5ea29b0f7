"""Exact ap_fixed casts composed from standard ONNX operators on float64 tensors.

``T v = x;`` for ``T = ap_fixed<W, I, Q, O, N>`` is built as

1. ``y = x * 2**F`` (``F = W - I``): a power-of-two scale, exact for every double except where
   the product would be subnormal; the importer's graph input is guarded against that (values
   far below half an LSB are replaced by a same-signed stand-in, which every rounding mode
   treats the same way), internal edges are on a known grid and are checked statically.
2. rounding to an integer ``q`` on the magnitude, as ``qfx.fixed.exact._round_float64`` does:
   ``a = |y|``, ``n = Floor(a)``, ``g = a - n`` (exact for every double), then each mode's
   decision is a comparison of ``g`` with 1/2. ``Floor(y + 0.5)`` is *not* used: it is wrong
   for doubles such as ``0.5 - 2**-54``.
3. overflow on the integer ``q``: ``Max``/``Min`` (AP_SAT, AP_SAT_SYM; not ``Clip``, see
   :meth:`Builder.clamp`), ``Where`` (AP_SAT_ZERO), and
   two's-complement wrapping through ``Mod(fmod=1)`` (C ``fmod``, exact for doubles) for
   AP_WRAP; AP_WRAP with saturation bits and AP_WRAP_SM rewrite bit fields of the W-bit
   pattern exactly like ``ap_fixed_base::overflow_adjust`` (``qfx.fixed.exact``), with bit
   ``k`` of an integer ``v`` read as ``Floor(v * 2**-k) mod 2``: every value involved is an
   integer below 2**53 (qfx refuses edges wider than 53 bits), so all of it is exact.
4. ``q * 2**-F``.

A cast whose source can neither round nor overflow emits nothing.
"""

from __future__ import annotations

from onnx import TensorProto

from qfx.backends.onnx._common import Builder, OnnxExportError, cast_needs, pow2
from qfx.fixed.fixed_type import FixedType

__all__ = ["emit_cast"]

#: Input values below this magnitude only keep their sign (see step 1).
_TINY_EXP = -800
#: Binary points beyond 2**±400 are refused: with at most 53-bit mantissas every scaled value
#: then stays a normal double (between 2**-800 and 2**853).
_MAX_FRAC = 400


class _Ops:
    """Shorthands over a :class:`Builder` for integer-valued double arithmetic."""

    def __init__(self, b: Builder, base: str) -> None:
        self.b, self.base = b, base

    def c(self, value: float) -> str:
        return self.b.const(value, f"{self.base}__c")

    def op(self, op_type: str, *inputs: str, **attrs: object) -> str:
        return self.b.op(op_type, list(inputs), f"{self.base}__{op_type.lower()}", **attrs)

    def mul(self, x: str, k: float) -> str:
        return x if k == 1.0 else self.op("Mul", x, self.c(k))

    def clamp(self, x: str, lo: float, hi: float) -> str:
        return self.b.clamp(x, self.c(lo), self.c(hi), f"{self.base}__clamp")

    def add(self, x: str, k: float) -> str:
        return x if k == 0.0 else self.op("Add", x, self.c(k))

    def mod_pos(self, v: str, m: float) -> str:
        """v mod m in [0, m) for integer-valued v (fmod keeps the dividend's sign)."""
        r = self.op("Mod", v, self.c(m), fmod=1)
        return self.op("Where", self.op("Less", r, self.c(0.0)), self.add(r, m), r)

    def field(self, v: str, lo: int, n: int) -> str:
        """Bits lo .. lo+n-1 of the integer v (two's complement for negative v)."""
        return self.mod_pos(self.op("Floor", self.mul(v, pow2(-lo))), pow2(n))

    def bit(self, v: str, k: int) -> str:
        """Bit k of v as a boolean tensor."""
        return self.op("Equal", self.field(v, k, 1), self.c(1.0))

    def set_bits(self, v: str, lo: int, hi: int, ones: str | None) -> str:
        """Bits lo..hi of the pattern v set to ones where ``ones`` (None: everywhere), else 0."""
        if hi < lo:
            return v
        width = hi - lo + 1
        cleared = self.op("Sub", v, self.mul(self.field(v, lo, width), pow2(lo)))
        filled = self.add(cleared, (pow2(width) - 1.0) * pow2(lo))
        return filled if ones is None else self.op("Where", ones, filled, cleared)

    def to_double(self, flag: str) -> str:
        return self.op("Cast", flag, to=TensorProto.DOUBLE)


def emit_cast(b: Builder, x: str, dst: FixedType, src: FixedType | None, node: str) -> str:
    """Append ops computing ``dst``'s value of ``x`` exactly; returns the result tensor name.

    ``src`` is the format ``x`` is known to have (``None``: any double, e.g. a graph input).
    ``node`` is the IR node's name, used for messages and tensor names.

    Example:
        >>> b = Builder()
        >>> emit_cast(b, "x", FixedType(8, 3, rounding="RND"), FixedType(6, 3), "fc")  # contained
        'x'
        >>> out = emit_cast(b, "x", FixedType(4, 3, overflow="SAT"), FixedType(6, 3), "fc")
        >>> [n.op_type for n in b.nodes]
        ['Mul', 'Floor', 'Max', 'Min', 'Mul']
    """
    where = f"node {node!r}"
    if dst.width > 53:
        raise OnnxExportError(f"{where}: {dst.cpp()} is wider than 53 bits; float64 cannot hold "
                              "it exactly")
    for t in (dst, src):
        if t is not None and abs(t.frac_bits) > _MAX_FRAC:
            raise OnnxExportError(f"{where}: {t.cpp()} has a binary point beyond 2**{_MAX_FRAC}; "
                                  "float64 scaling could leave the normal range")
    need_round, need_ovf = cast_needs(src, dst)
    if not need_round and not need_ovf:
        return x  # the value is already representable: an identity cast
    base = f"{node}__q"
    o = _Ops(b, base)
    F = dst.frac_bits
    y = x
    if src is None and F < 0:
        if _TINY_EXP + F < -1022:  # keep tiny * 2**F a normal double
            raise OnnxExportError(f"{where}: an LSB of 2**{-F} is too coarse for the exact "
                                  "float64 input cast")
        tiny = pow2(_TINY_EXP)
        small = o.op("Less", o.op("Abs", y), o.c(tiny))
        y = o.op("Where", small, o.mul(o.op("Sign", y), tiny), y)
    y = o.mul(y, pow2(F))
    wrapping = dst.overflow in ("WRAP", "WRAP_SM")
    if src is None and wrapping and need_ovf:
        # |y| >= 2**(53+W) is a multiple of 2**(W+1): its low W+1 bits are zero, as are the
        # bound's; clamping also turns an infinite product into a finite one.
        bound = pow2(dst.width + 54)
        y = o.clamp(y, -bound, bound)
    q0 = y
    q = _round(o, y, dst.rounding) if need_round else y
    if need_round and dst.overflow == "WRAP_SM" and dst.sat_bits == 0 and need_ovf:
        q0 = o.op("Floor", y)  # the truncated value, whose bit W the header inspects
    if need_ovf:
        q = _overflow(o, q, q0, dst)
    return o.mul(q, pow2(-F))


def _round(o: _Ops, y: str, mode: str) -> str:
    """Round the double y to an integer with an ap_fixed quantisation mode (exactly)."""
    if mode == "TRN":
        return o.op("Floor", y)
    neg = o.op("Less", y, o.c(0.0))
    a = o.op("Abs", y)
    n = o.op("Floor", a)
    if mode == "TRN_ZERO":
        mag = n
    else:
        g = o.op("Sub", a, n)  # exact: Sterbenz for a >= 1, g == a below
        half = o.c(0.5)
        above = o.op("Greater", g, half)
        tie = o.op("Equal", g, half)
        if mode == "RND_INF":
            inc = o.op("Or", above, tie)
        elif mode == "RND_ZERO":
            inc = above
        elif mode == "RND_CONV":
            odd = o.op("Equal", o.op("Mod", n, o.c(2.0), fmod=1), o.c(1.0))
            inc = o.op("Or", above, o.op("And", tie, odd))
        elif mode == "RND":  # ties toward +inf: up in magnitude for non-negative y
            inc = o.op("Or", above, o.op("And", tie, o.op("Not", neg)))
        elif mode == "RND_MIN_INF":
            inc = o.op("Or", above, o.op("And", tie, neg))
        else:
            raise OnnxExportError(f"unknown rounding mode {mode!r}")
        mag = o.op("Add", n, o.to_double(inc))
    return o.op("Where", neg, o.op("Neg", mag), mag)


def _overflow(o: _Ops, q: str, q0: str, t: FixedType) -> str:
    """ap_fixed overflow handling of the integer q (q0: the truncated value, for WRAP_SM)."""
    W, N = t.width, t.sat_bits
    raw_max, raw_min = float(t.raw_max), float(t.raw_min)
    symmetric = t.signed and t.overflow == "SAT_SYM" and W > 1
    floor_min = -raw_max if symmetric else raw_min
    if t.overflow in ("SAT", "SAT_SYM"):
        return o.clamp(q, floor_min, raw_max)
    ovf = o.op("Greater", q, o.c(raw_max))
    udf = o.op("Less", q, o.c(floor_min))
    if t.overflow == "SAT_ZERO":
        return o.op("Where", o.op("Or", ovf, udf), o.c(0.0), q)
    # wrapping modes work on the W-bit two's-complement pattern v in [0, 2**W)
    v = o.mod_pos(q, pow2(W))
    if t.overflow == "WRAP" and N == 0:
        w = v
    else:
        hit = o.op("Or", ovf, udf)
        neg = o.op("Less", q, o.c(0.0))
        not_neg = o.op("Not", neg)
        full = pow2(W) - 1.0
        flipped = o.op("Sub", o.c(full), v)  # v XOR all-ones
        if t.overflow == "WRAP":
            if t.signed:
                w = o.set_bits(v, W - 1, W - 1, neg)
                w = o.set_bits(w, W - N, W - 2, not_neg)
            else:
                w = o.set_bits(v, W - N, W - 1, None)
        elif t.overflow == "WRAP_SM":
            if not t.signed:
                raise OnnxExportError("AP_WRAP_SM needs a signed type")
            ro = o.bit(v, W - 1)
            if N == 0:
                ld = o.bit(q0, W)
                w = o.op("Where", o.op("Xor", ld, ro), flipped, v)
                w = o.set_bits(w, W - 1, W - 1, ld)
            else:
                if N == 1:
                    w = o.op("Where", o.op("Xor", neg, ro), flipped, v)
                else:
                    lno = o.bit(v, W - N)
                    w = o.op("Where", o.op("Not", o.op("Xor", lno, neg)), flipped, v)
                    w = o.set_bits(w, W - N, W - 2, not_neg)
                w = o.set_bits(w, W - 1, W - 1, neg)
        else:
            raise OnnxExportError(f"unknown overflow mode {t.overflow!r}")
        w = o.op("Where", hit, w, v)
    if t.signed:
        w = o.op("Where", o.op("Greater", w, o.c(raw_max)), o.add(w, -pow2(W)), w)
    return w
