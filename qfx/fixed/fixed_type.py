"""`FixedType`: the one numeric model of qfx, an exact twin of C++ ``ap_fixed<W,I,Q,O,N>``.

Everything that decides how a number is rounded or wrapped — the PyTorch emulation, the C++
type string, the ONNX export and the resource estimate — is derived from a FixedType.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
import torch

from qfx.fixed.exact import quantize_double, requantize

__all__ = ["FixedType", "ROUNDING_MODES", "OVERFLOW_MODES", "MAX_WIDTH", "cast_needs"]

ROUNDING_MODES: tuple[str, ...] = (
    "TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV",
)
OVERFLOW_MODES: tuple[str, ...] = ("SAT", "SAT_ZERO", "SAT_SYM", "WRAP", "WRAP_SM")
# Raw mantissas live in int64; 62 bits leave headroom for the sign and exact comparisons.
MAX_WIDTH = 62

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

_TYPE_RE = re.compile(r"^\s*(ap_fixed|ap_ufixed|ap_int|ap_uint)\s*<\s*([^<>]*)\s*>\s*$")


def _mode(value: str, allowed: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"{what} mode must be a string, one of {', '.join(allowed)}; got {value!r}"
        )
    name = value.strip().upper()
    if name.startswith("AP_"):
        name = name[3:]
    if name not in allowed:
        raise ValueError(
            f"invalid {what} mode {value!r}; allowed: {', '.join(allowed)} "
            f"(optionally with the AP_ prefix)"
        )
    return name


@dataclass(frozen=True)
class FixedType:
    """A fixed-point format with ap_fixed semantics: W bits, I integer bits (sign included).

    The value of a raw integer ``k`` is ``k * 2**(I - W)``. ``I`` may be negative or larger
    than ``W``. Conversions reproduce the C++ headers bit for bit for every rounding
    (quantisation) and overflow mode, including saturation bits ``N``.

    Example:
        >>> t = FixedType(8, 3, rounding="RND_CONV", overflow="SAT")
        >>> t.cpp()
        'ap_fixed<8,3,AP_RND_CONV,AP_SAT>'
        >>> t.quantize(np.array([0.1, 100.0])).tolist()
        [0.09375, 3.96875]
        >>> FixedType.parse("ap_ufixed<6,2>") == FixedType(6, 2, signed=False)
        True
    """

    width: int
    int_bits: int
    signed: bool = True
    rounding: str = "TRN"
    overflow: str = "WRAP"
    sat_bits: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "int_bits", "sat_bits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"FixedType {name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not 1 <= self.width <= MAX_WIDTH:
            raise ValueError(
                f"FixedType width must be between 1 and {MAX_WIDTH} bits (qfx computes on int64 "
                f"mantissas); got {self.width}"
            )
        object.__setattr__(self, "signed", bool(self.signed))
        object.__setattr__(self, "rounding", _mode(self.rounding, ROUNDING_MODES, "rounding"))
        object.__setattr__(self, "overflow", _mode(self.overflow, OVERFLOW_MODES, "overflow"))
        if not 0 <= self.sat_bits <= self.width:
            raise ValueError(
                f"saturation bits N must be between 0 and the width {self.width}; "
                f"got {self.sat_bits}"
            )
        if self.overflow == "WRAP_SM" and not self.signed:
            raise ValueError(
                "overflow mode WRAP_SM (sign-magnitude wrap) needs a signed type; for unsigned "
                f"types use one of {', '.join(m for m in OVERFLOW_MODES if m != 'WRAP_SM')}"
            )

    # ------------------------------------------------------------------ spelling
    @classmethod
    def parse(cls, text: str) -> FixedType:
        """Read a C++ spelling: ``ap_fixed<8,3>``, ``ap_fixed<8,3,AP_RND_CONV,AP_SAT,2>``,
        ``ap_ufixed<6,2>``, ``ap_int<8>``, ``ap_uint<4>``.

        ``ap_int<W>`` is read as ``ap_fixed<W,W>``: the value set and every fixed-point cast
        are the same, and qfx always emits the ap_fixed spelling.

        Example:
            >>> FixedType.parse("ap_fixed<8,3,AP_TRN,AP_WRAP,2>").sat_bits
            2
        """
        match = _TYPE_RE.match(text) if isinstance(text, str) else None
        if not match:
            raise ValueError(
                f"cannot parse fixed-point type {text!r}; expected e.g. ap_fixed<8,3>, "
                "ap_fixed<8,3,AP_RND,AP_SAT>, ap_ufixed<6,2>, ap_int<8> or ap_uint<4>"
            )
        kind, args_text = match.groups()
        args = [a.strip() for a in args_text.split(",")]
        signed = kind in ("ap_fixed", "ap_int")
        try:
            if kind in ("ap_int", "ap_uint"):
                if len(args) != 1:
                    raise ValueError(f"{kind} takes exactly one argument (the width)")
                width = int(args[0])
                return cls(width, width, signed)
            if not 2 <= len(args) <= 5:
                raise ValueError(f"{kind} takes 2 to 5 arguments <W,I,Q,O,N>")
            width, int_bits = int(args[0]), int(args[1])
            rounding = args[2] if len(args) > 2 else "TRN"
            overflow = args[3] if len(args) > 3 else "WRAP"
            sat_bits = int(args[4]) if len(args) > 4 else 0
        except ValueError as err:
            raise ValueError(f"cannot parse fixed-point type {text!r}: {err}") from None
        return cls(width, int_bits, signed, rounding, overflow, sat_bits)

    def cpp(self) -> str:
        """The C++ type, shortest spelling that round-trips through :meth:`parse`.

        Example:
            >>> FixedType(6, 2, signed=False).cpp()
            'ap_ufixed<6,2>'
        """
        name = "ap_fixed" if self.signed else "ap_ufixed"
        args = [str(self.width), str(self.int_bits)]
        if self.sat_bits:
            args += [f"AP_{self.rounding}", f"AP_{self.overflow}", str(self.sat_bits)]
        elif self.overflow != "WRAP":
            args += [f"AP_{self.rounding}", f"AP_{self.overflow}"]
        elif self.rounding != "TRN":
            args += [f"AP_{self.rounding}"]
        return f"{name}<{','.join(args)}>"

    def __str__(self) -> str:
        return self.cpp()

    # ------------------------------------------------------------------ properties
    @property
    def frac_bits(self) -> int:
        """Fractional bits F = W - I (negative when I > W)."""
        return self.width - self.int_bits

    @property
    def lsb(self) -> float:
        """Value of one raw step, 2**(I - W) (exact: a power of two)."""
        return math.ldexp(1.0, -self.frac_bits)

    @property
    def raw_min(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def raw_max(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def min(self) -> float:
        """Smallest representable value (a float; exact for W <= 53)."""
        return math.ldexp(float(self.raw_min), -self.frac_bits)

    @property
    def max(self) -> float:
        """Largest representable value (a float; exact for W <= 53)."""
        return math.ldexp(float(self.raw_max), -self.frac_bits)

    def replace(self, **changes: object) -> FixedType:
        """A copy with some fields changed, e.g. ``t.replace(rounding="RND")``."""
        return replace(self, **changes)

    def storage(self) -> FixedType:
        """This W/I/signedness with the default modes: how a constant whose raw value is
        already exact is stored (its rounding/overflow modes would never act).

        Example:
            >>> FixedType(8, 3, rounding="RND", overflow="SAT").storage().cpp()
            'ap_fixed<8,3>'
        """
        return FixedType(self.width, self.int_bits, self.signed)

    def with_modes_of(self, other: FixedType) -> FixedType:
        """This W/I/signedness with another type's rounding, overflow and N."""
        return self.replace(rounding=other.rounding, overflow=other.overflow,
                            sat_bits=min(other.sat_bits, self.width))

    def contains(self, other: FixedType) -> bool:
        """True when every value of ``other`` is representable in ``self`` without loss.

        Example:
            >>> FixedType(10, 4).contains(FixedType(8, 3))
            True
        """
        if other.frac_bits > self.frac_bits:
            return False
        scale = self.frac_bits - other.frac_bits
        return (other.raw_min << scale) >= self.raw_min and (other.raw_max << scale) <= self.raw_max

    # ------------------------------------------------------------------ conversions
    def to_int(self, x: ArrayT) -> ArrayT:
        """Raw int64 mantissas that ``T v = (double)x;`` holds in C++, element by element.

        Accepts a numpy array or a torch tensor (any float dtype; values are read exactly as
        doubles) and returns the same container type. Signed types give the two's-complement
        value, unsigned types a value in [0, 2**W).

        Example:
            >>> FixedType(4, 2, rounding="RND").to_int(np.array([0.375, -0.375])).tolist()
            [2, -1]
        """
        return _with_torch(x, self._to_int_torch)

    def quantize(self, x: ArrayT) -> ArrayT:
        """float64 values equal to what ``T v = (double)x;`` holds (exact for W <= 53).

        Example:
            >>> FixedType(4, 2, overflow="SAT").quantize(np.array([7.0])).tolist()
            [1.75]
        """
        return _with_torch(x, lambda t: self.from_int(self._to_int_torch(t)))

    def from_int(self, k: ArrayT) -> ArrayT:
        """Values of raw mantissas ``k`` as float64 (exact when |k| < 2**53).

        Example:
            >>> FixedType(8, 3).from_int(np.array([32])).tolist()
            [1.0]
        """
        if isinstance(k, torch.Tensor):
            return torch.ldexp(k.to(torch.float64),
                               torch.tensor(-self.frac_bits, dtype=torch.float64, device=k.device))
        return np.ldexp(np.asarray(k, dtype=np.float64), -self.frac_bits)

    def cast_int(self, k: ArrayT, src: FixedType) -> ArrayT:
        """Raw mantissas of this type after ``T dst = src_value;`` (an ap_fixed to ap_fixed cast).

        Example:
            >>> acc = FixedType(16, 8)
            >>> out = FixedType(8, 4, rounding="RND", overflow="SAT")
            >>> out.cast_int(np.array([1000, 40000 - 65536]), acc).tolist()
            [63, -128]
        """
        shift = self.frac_bits - src.frac_bits
        return _with_torch(k, lambda t: self._requantize(t.to(torch.int64), shift),
                           integer_input=True)

    def _to_int_torch(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_double(x, self.frac_bits, width=self.width, signed=self.signed,
                               rounding=self.rounding, overflow=self.overflow,
                               sat_bits=self.sat_bits)

    def _requantize(self, m: torch.Tensor, shift: torch.Tensor | int) -> torch.Tensor:
        return requantize(m, shift, width=self.width, signed=self.signed, rounding=self.rounding,
                          overflow=self.overflow, sat_bits=self.sat_bits)

    # ------------------------------------------------------------------ result types
    @staticmethod
    def mul(a: FixedType, b: FixedType) -> FixedType:
        """Full-precision type of ``a * b``: W1+W2, I1+I2, signed if either is.

        Example:
            >>> FixedType.mul(FixedType(8, 3), FixedType(6, 2, signed=False)).cpp()
            'ap_fixed<14,5>'
        """
        return FixedType(a.width + b.width, a.int_bits + b.int_bits, a.signed or b.signed)

    @staticmethod
    def _add_int_bits(a: FixedType, b: FixedType) -> int:
        return max(a.int_bits + (b.signed and not a.signed),
                   b.int_bits + (a.signed and not b.signed)) + 1

    @staticmethod
    def add(a: FixedType, b: FixedType) -> FixedType:
        """Full-precision type of ``a + b`` (ap_fixed's ``plus`` rule).

        Example:
            >>> FixedType.add(FixedType(8, 3), FixedType(8, 5)).cpp()
            'ap_fixed<11,6>'
        """
        i = FixedType._add_int_bits(a, b)
        return FixedType(i + max(a.frac_bits, b.frac_bits), i, a.signed or b.signed)

    @staticmethod
    def sub(a: FixedType, b: FixedType) -> FixedType:
        """Full-precision type of ``a - b``: like ``add`` but always signed."""
        i = FixedType._add_int_bits(a, b)
        return FixedType(i + max(a.frac_bits, b.frac_bits), i, True)

    @staticmethod
    def neg(a: FixedType) -> FixedType:
        """Type of ``-a``: W+1, I+1, signed."""
        return FixedType(a.width + 1, a.int_bits + 1, True)

    def sum_of(self, n: int) -> FixedType:
        """Smallest type that holds the exact sum of ``n`` values of this type.

        Example:
            >>> FixedType(8, 3).sum_of(9).cpp()
            'ap_fixed<12,7>'
        """
        if n < 1:
            raise ValueError(f"need at least one term, got {n}")
        grow = (n - 1).bit_length()  # ceil(log2(n))
        return FixedType(self.width + grow, self.int_bits + grow, self.signed)

    @staticmethod
    def for_raw_range(lo: int, hi: int, frac_bits: int) -> FixedType:
        """Smallest type with ``frac_bits`` fractional bits holding raw integers in [lo, hi].

        Example:
            >>> FixedType.for_raw_range(-5, 100, 4).cpp()
            'ap_fixed<8,4>'
        """
        if lo > hi:
            raise ValueError(f"empty range [{lo}, {hi}]")
        if lo >= 0:
            width = max(hi.bit_length(), 1)
            signed = False
        else:
            width = max(max(hi, 0).bit_length(), (-lo - 1).bit_length()) + 1
            signed = True
        return FixedType(width, width - frac_bits, signed)


def _with_torch(x, fn, *, integer_input: bool = False):
    """Run a torch kernel on a numpy array or tensor and hand back the caller's container."""
    if isinstance(x, torch.Tensor):
        if not integer_input and not x.is_floating_point():
            x = x.to(torch.float64)
        return fn(x)
    arr = np.asarray(x)
    if integer_input:
        if arr.dtype.kind not in "iub":
            raise ValueError(f"raw mantissas must be integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    else:
        arr = arr.astype(np.float64)
    out = fn(torch.from_numpy(np.ascontiguousarray(arr)))
    return out.numpy()


def cast_needs(src: FixedType | None, dst: FixedType) -> tuple[bool, bool]:
    """(rounding needed, overflow possible) for casting a value of ``src`` to ``dst``.

    ``src=None`` means any double. Rounding is needed when the source grid is finer than the
    destination's; overflow is possible when some source value, rounded either way, falls
    outside what ``dst`` keeps (for signed AP_SAT_SYM the most negative code counts as
    outside, because the headers rewrite it to -max).

    Example:
        >>> cast_needs(FixedType(8, 3), FixedType(10, 4))
        (False, False)
        >>> cast_needs(FixedType(8, 3), FixedType(6, 3, overflow="SAT"))  # 127/4 rounds to 32
        (True, True)
    """
    if src is None:
        return True, True
    need_round = src.frac_bits > dst.frac_bits
    shift = dst.frac_bits - src.frac_bits
    if shift >= 0:
        lo, hi = src.raw_min << shift, src.raw_max << shift
    else:  # floor / ceil of the scaled bounds cover every rounding mode
        lo, hi = src.raw_min >> -shift, -((-src.raw_max) >> -shift)
    floor_min = dst.raw_min
    if dst.overflow == "SAT_SYM" and dst.signed and dst.width > 1:
        floor_min = -dst.raw_max
    return need_round, not (floor_min <= lo and hi <= dst.raw_max)
