"""K-hot (multiplier-free) quantisation: at most K non-zero signed power-of-two digits per value.

A K-hot value of a fixed-point format ``ap_fixed<W, I>`` is ``c * 2**(I - W)`` where the raw
integer ``c`` lies in the format's range and is a sum of at most K terms ``+-2**s`` (``s >= 0``:
every digit is on the format's grid). Multiplying by it takes K shifts and K - 1 adds: no DSP.

The set of K-hot codes
    Every integer has exactly one *non-adjacent form* (NAF, the canonical signed digit form:
    digits in {-1, 0, +1}, no two adjacent digits non-zero), and the NAF has the fewest non-zero
    digits of all signed-binary representations. So the K-hot codes of a format are exactly the
    in-range integers whose NAF has at most K non-zero digits, and the NAF gives their digits.
    Digit positions never exceed ``W`` (a NAF is at most one digit longer than the binary form).

The projection (exact, not greedy)
    ``khot_project`` returns, for a real ``y`` in units of the LSB, the *nearest* K-hot code:
    a sorted table of all codes and ``searchsorted`` find the two neighbours of ``y``, and ``y``
    is compared with their midpoint (exact in float64). Ties (``y`` exactly halfway) go to the
    code of smaller magnitude (toward zero), so the projection is odd-symmetric where the code
    set is. Values beyond the extreme codes saturate to them (a K-hot quantizer always
    saturates; the FixedType's rounding and overflow modes play no part). Cheaper rules are
    not exact: keeping the K most significant CSD digits of the rounded value maps 43 to
    48 = 64 - 16 with K = 2 (40 = 32 + 8 is nearer), and greedily taking the power of two
    nearest to the residual maps 100 to 128 with K = 1, outside a signed 8-bit range (the
    nearest in-range code is 64). ``tests/fixed/test_khot.py`` checks the table projection
    against brute force.

Tables are built once per (width, K, signedness): all integers of the range with their NAF
weight for ``W <= 20``, a union over digit positions above that (small K), and plain rounding
when every in-range integer is a code (``K >= (W + 2) // 2``).

Example:
    >>> khot_codes(5, 1, signed=True).tolist()
    [-16, -8, -4, -2, -1, 0, 1, 2, 4, 8]
    >>> khot_project(torch.tensor([5.9, 6.0, -6.0], dtype=torch.float64), 5, 1, True).tolist()
    [4.0, 4.0, -4.0]
    >>> khot_digits(torch.tensor([7, -12]), 2).tolist()
    [[[1, 3], [-1, 0]], [[-1, 4], [1, 2]]]
"""

from __future__ import annotations

import functools
import math

import torch

from qfx.fixed.quantizer import FixedQuantizer

__all__ = [
    "KHotQuantizer", "MAX_KHOT_WIDTH", "khot_codes", "khot_project", "khot_digits",
    "khot_fake_quantize", "csd_weight", "digits_to_raw", "code_range",
]

# K-hot widths are limited so that every code and midpoint is exact in float64 and every
# intermediate of the table construction fits in int64.
MAX_KHOT_WIDTH = 48
_ENUMERATE_WIDTH = 20  # up to here, the table is built from all integers of the range
_MAX_TABLE_WORK = 1 << 22
_LN2 = math.log(2.0)


def _raw_range(width: int, signed: bool) -> tuple[int, int]:
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


def _check_args(width: int, k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"K (the number of non-zero digits) must be an integer >= 1, got {k!r}")
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= MAX_KHOT_WIDTH:
        raise ValueError(f"a K-hot format must be 1..{MAX_KHOT_WIDTH} bits wide, got {width!r}")


def _naf_masks(mag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bit masks of the +1 and -1 digits of the NAF of non-negative int64 ``mag`` (< 2**61)."""
    half = mag >> 1
    three_halves = mag + half
    changed = half ^ three_halves
    return three_halves & changed, half & changed


def _popcount(v: torch.Tensor, bits: int) -> torch.Tensor:
    count = torch.zeros_like(v)
    for b in range(bits):
        count += (v >> b) & 1
    return count


def csd_weight(raw: torch.Tensor) -> torch.Tensor:
    """Number of non-zero digits of the canonical signed digit form (NAF) of int64 ``raw``:
    the fewest signed powers of two that sum to each value.

    Example:
        >>> csd_weight(torch.tensor([0, 1, 3, 7, 11, -11])).tolist()
        [0, 1, 2, 2, 3, 3]
    """
    raw = torch.as_tensor(raw, dtype=torch.int64)
    pos, neg = _naf_masks(raw.abs())
    return _popcount(pos | neg, 63)


@functools.lru_cache(maxsize=64)
def _codes_cpu(width: int, k: int, signed: bool) -> torch.Tensor | None:
    """Sorted int64 K-hot codes of the range, or None when every integer of it is one."""
    lo, hi = _raw_range(width, signed)
    if k >= (width + 2) // 2:  # NAF weight of an integer below 2**W is at most ceil((W+1)/2)
        return None
    if width <= _ENUMERATE_WIDTH:
        n = torch.arange(lo, hi + 1, dtype=torch.int64)
        return n[csd_weight(n) <= k]
    powers = torch.tensor([1 << p for p in range(width + 1)], dtype=torch.int64)
    steps = torch.cat([powers, -powers])
    codes = torch.zeros(1, dtype=torch.int64)
    for _ in range(k):
        if codes.numel() * steps.numel() > _MAX_TABLE_WORK:
            raise ValueError(
                f"the table of {k}-hot codes of a {width}-bit format is too large to build; "
                f"use a width <= {_ENUMERATE_WIDTH} or a smaller K"
            )
        codes = torch.unique(torch.cat([codes, (codes[:, None] + steps[None, :]).reshape(-1)]))
    return codes[(codes >= lo) & (codes <= hi)]


def khot_codes(width: int, k: int, signed: bool = True) -> torch.Tensor:
    """All raw integers of a ``width``-bit format with at most ``k`` non-zero CSD digits, sorted.

    Example:
        >>> khot_codes(4, 2, signed=False).tolist()
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 15]
    """
    _check_args(width, k)
    codes = _codes_cpu(width, k, bool(signed))
    if codes is None:
        lo, hi = _raw_range(width, signed)
        return torch.arange(lo, hi + 1, dtype=torch.int64)
    return codes.clone()


_DEVICE_TABLES: dict[tuple[int, int, bool, str], torch.Tensor | None] = {}


def _table(width: int, k: int, signed: bool, device: torch.device) -> torch.Tensor | None:
    key = (width, k, signed, str(device))
    if key not in _DEVICE_TABLES:
        codes = _codes_cpu(width, k, signed)
        _DEVICE_TABLES[key] = None if codes is None else codes.to(device, torch.float64)
    return _DEVICE_TABLES[key]


def code_range(width: int, k: int, signed: bool = True) -> tuple[int, int]:
    """Smallest and largest K-hot code of a format (the saturation bounds of the projection).

    Example:
        >>> code_range(8, 1)
        (-128, 64)
    """
    _check_args(width, k)
    codes = _codes_cpu(width, k, bool(signed))
    if codes is None:
        return _raw_range(width, signed)
    return int(codes[0]), int(codes[-1])


def khot_project(y: torch.Tensor, width: int, k: int, signed: bool = True) -> torch.Tensor:
    """Nearest K-hot code (as float64 integers) to each float ``y`` given in units of the LSB.

    Ties go toward zero; values beyond the extreme codes saturate to them. Vectorised on the
    tensor's device (CPU or CUDA); exact for every float64 input.

    Example:
        >>> y = torch.tensor([2.5, -2.5, 100.0, 13.0], dtype=torch.float64)
        >>> khot_project(y, 6, 1, signed=True).tolist()   # codes 0, +-1, +-2, +-4, ..., -32
        [2.0, -2.0, 16.0, 16.0]
    """
    _check_args(width, k)
    y = y.to(torch.float64)
    table = _table(width, k, bool(signed), y.device)
    if table is None:
        lo, hi = _raw_range(width, signed)
        q = torch.sign(y) * torch.ceil(y.abs() - 0.5)  # nearest, ties toward zero (exact)
        return q.clamp_(float(lo), float(hi))
    flat = y.reshape(-1).contiguous()
    idx = torch.searchsorted(table, flat)
    last = table.numel() - 1
    a = table[(idx - 1).clamp_(0, last)]
    b = table[idx.clamp_(max=last)]
    mid = (a + b) * 0.5  # exact: integers below 2**48
    pick_b = (flat > mid) | ((flat == mid) & (b.abs() < a.abs()))
    return torch.where(pick_b, b, a).reshape(y.shape)


def khot_digits(raw: torch.Tensor, k: int) -> torch.Tensor:
    """CSD digits of K-hot raw integers: int64 ``[..., k, 2]`` of (sign, shift) pairs.

    ``raw == sum_j sign_j * 2**shift_j``, with sign in {-1, +1} for used slots, most
    significant digit first, no two digits at adjacent shifts (the NAF, so the count is
    minimal); unused slots are (0, 0). Raises if a value needs more than ``k`` digits.

    Example:
        >>> khot_digits(torch.tensor([96, -1, 0]), 2).tolist()
        [[[1, 7], [-1, 5]], [[-1, 0], [0, 0]], [[0, 0], [0, 0]]]
    """
    raw = torch.as_tensor(raw, dtype=torch.int64)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"K must be an integer >= 1, got {k!r}")
    mag = raw.abs()
    sgn = torch.sign(raw)
    pos, neg = _naf_masks(mag)
    top = int(mag.max()) if mag.numel() else 0
    bits = top.bit_length() + 1
    weight = _popcount(pos | neg, bits)
    if bool((weight > k).any()):
        bad = raw[weight > k][0]
        raise ValueError(f"{int(bad)} has {int(csd_weight(bad))} non-zero CSD digits, more "
                         f"than K={k}")
    digits = torch.zeros(*raw.shape, k, 2, dtype=torch.int64, device=raw.device)
    count = torch.zeros_like(raw)
    for b in reversed(range(bits)):
        d = ((pos >> b) & 1) - ((neg >> b) & 1)
        hit = d != 0
        for j in range(k):
            put = hit & (count == j)
            digits[..., j, 0] = torch.where(put, d * sgn, digits[..., j, 0])
            digits[..., j, 1] = torch.where(put, torch.full_like(raw, b), digits[..., j, 1])
        count += hit.to(torch.int64)
    return digits


def digits_to_raw(digits: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`khot_digits`: ``sum_j sign_j << shift_j`` over the last-but-one axis.

    Example:
        >>> digits_to_raw(torch.tensor([[[1, 7], [-1, 5]]])).tolist()
        [96]
    """
    digits = torch.as_tensor(digits, dtype=torch.int64)
    return (digits[..., 0] * torch.bitwise_left_shift(torch.ones_like(digits[..., 1]),
                                                       digits[..., 1])).sum(-1)


class _KHotFakeQuant(torch.autograd.Function):
    # Same gradients as qfx.fixed.fake_quant: straight-through for x between the extreme
    # codes (zero outside), and ln2 * (out - x) (inside) or ln2 * out (saturated) for log2_lsb.
    @staticmethod
    def forward(ctx, x, p, reduce_dims, width, k, signed):
        frac = -torch.round(p.detach()).to(torch.float64)
        y = torch.ldexp(x.detach().to(torch.float64), frac)
        q = khot_project(y, width, k, signed)
        c_lo, c_hi = code_range(width, k, signed)
        inside = (y >= c_lo) & (y <= c_hi)
        out = torch.ldexp(q, -frac).to(x.dtype)
        ctx.save_for_backward(x, out, inside)
        ctx.reduce_dims = reduce_dims
        ctx.p_shape = p.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out, inside = ctx.saved_tensors
        grad_p = None
        if ctx.needs_input_grad[1]:
            err = torch.where(inside, out - x, out)
            if ctx.reduce_dims:
                g = (grad * err).sum(ctx.reduce_dims, dtype=torch.float64)
            else:
                g = torch.dot(grad.reshape(-1).double(), err.reshape(-1).double())
            grad_p = (_LN2 * g).reshape(ctx.p_shape).to(grad.dtype)
        grad_x = grad * inside if ctx.needs_input_grad[0] else None
        return grad_x, grad_p, None, None, None, None


def khot_fake_quantize(x: torch.Tensor, log2_lsb: torch.Tensor, *, width: int, k: int,
                       signed: bool = True, channel_dim: int | None = None) -> torch.Tensor:
    """Differentiable K-hot quantisation of ``x`` on the grid ``2**round(log2_lsb)``.

    Example:
        >>> p = torch.tensor(-3.0, requires_grad=True)
        >>> khot_fake_quantize(torch.tensor([0.74, -0.2]), p, width=6, k=1).tolist()
        [0.5, -0.25]
    """
    _check_args(width, k)
    if log2_lsb.dim() == 0:
        return _KHotFakeQuant.apply(x, log2_lsb, (), width, k, bool(signed))
    if channel_dim is None:
        raise ValueError("a per-channel binary point needs channel_dim")
    cd = channel_dim % x.dim()
    shape = [1] * x.dim()
    shape[cd] = -1
    reduce_dims = tuple(d for d in range(x.dim()) if d != cd)
    return _KHotFakeQuant.apply(x, log2_lsb.reshape(shape), reduce_dims, width, k, bool(signed))


class KHotQuantizer(FixedQuantizer):
    """A :class:`FixedQuantizer` whose values have at most ``k`` non-zero signed power-of-two
    digits on the ``ap_fixed<width, I>`` grid; the binary point ``I`` is still learned.

    Each value becomes the nearest K-hot value of the format (ties toward zero, saturating to
    the extreme codes; see the module docstring), with a straight-through gradient and the
    TQT/LSQ binary-point gradient in training. ``k = 1`` is power-of-two quantisation.
    Calibration picks the binary point with the least K-hot quantisation error. The
    ``fixed_type`` is the storage format (its RND/SAT modes are never needed: a K-hot value
    is already on the grid).

    Example:
        >>> q = KHotQuantizer(2, width=8, int_bits=1)
        >>> q.eval()(torch.tensor([0.3, -0.9])).tolist()    # 0.3 ~ 0.3125 = 2**-2 + 2**-4
        [0.3125, -0.875]
        >>> q.to_int(torch.tensor([0.3])).tolist()
        [40]
    """

    def __init__(self, k: int, width: int = 8, signed: bool = True, *,
                 int_bits: int | None = None, learn_binary_point: bool = True,
                 per_channel: bool = False, num_channels: int | None = None,
                 channel_dim: int = 0) -> None:
        _check_args(width, k)
        super().__init__(width, signed, "RND", "SAT", 0, int_bits=int_bits,
                         learn_binary_point=learn_binary_point, per_channel=per_channel,
                         num_channels=num_channels, channel_dim=channel_dim)
        self.k = k
        _codes_cpu(width, k, bool(signed))  # build (and validate) the table now

    def extra_repr(self) -> str:
        return f"k={self.k}, " + super().extra_repr()

    @property
    def code_range(self) -> tuple[int, int]:
        """Smallest and largest raw code (values beyond them saturate)."""
        return code_range(self.width, self.k, self.signed)

    def _fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        return khot_fake_quantize(x, self.log2_lsb, width=self.width, k=self.k,
                                  signed=self.signed,
                                  channel_dim=self.channel_dim if self.per_channel else None)

    def _codes_of(self, x: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().to(torch.float64)
        if torch.isnan(x).any():
            raise ValueError("cannot convert NaN to a fixed-point number (ap_fixed gives it no "
                             "value)")
        frac = self._frac_bits(p.detach(), x).to(torch.float64)
        return khot_project(torch.ldexp(x, frac), self.width, self.k, self.signed), frac

    def _exact_from_p(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        codes, frac = self._codes_of(x, p)
        return torch.ldexp(codes, -frac)

    @torch.no_grad()
    def to_int(self, x: torch.Tensor) -> torch.Tensor:
        """Raw int64 K-hot codes of ``x`` in this quantizer's current format(s)."""
        return self._codes_of(x, self.log2_lsb)[0].to(torch.int64)

    def digits(self, x: torch.Tensor) -> torch.Tensor:
        """CSD digits ``[..., k, 2]`` (sign, shift) of the raw codes of ``x``."""
        return khot_digits(self.to_int(x), self.k)

    def _candidate_values(self, x: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
        frac = frac.to(torch.float64)
        codes = khot_project(torch.ldexp(x, frac), self.width, self.k, self.signed)
        return torch.ldexp(codes, -frac)
