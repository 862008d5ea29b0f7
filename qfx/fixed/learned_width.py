"""`WidthQuantizer`: a fixed-point quantizer that learns its word length, not only its binary point.

A number is ``k`` sign bits (0 or 1), ``b`` magnitude bits and a step ``2**p``: the format is
``ap_(u)fixed<k + b, k + r>`` with ``r = p + b`` (so ``2**r`` is the range). Two float
parameters per granule (one per tensor, per channel or per element) carry it:

* ``log2_lsb`` (``p``, rounded in the forward pass): the step, as in :class:`FixedQuantizer`;
* ``log2_range`` (``r``): the saturation level, for activations. For constants (weights, biases,
  BatchNorm scale/shift) ``r`` is not learned: it is the least one that holds every rounded value
  of the granule (no constant is ever clipped) and the sign bit follows the data (``k = 0``
  where no rounded value is negative): both are free, they cost nothing in accuracy.

The width ``k + b`` is thus learned; a granule whose ``b`` reaches 0 is zero (pruned).

The gradient estimator (first order in the quantisation error). With ``x_q = x + d`` and ``g``
the loss gradient at ``x_q``, the loss moves by about ``g * d``.

* Inside the range, ``d`` is the rounding error; one more fractional bit halves it (in
  distribution, and for any fixed ``x`` on average over the grid's offset), so
  ``d d / d p = ln2 * d``: ``dL/dp = ln2 * sum(g * d)``. It is negative when the rounding
  errors work against the loss (then ``p`` falls: a finer step) and zero on average when they
  do not matter (then only the resource penalty acts, and the step coarsens). This is the
  TQT/LSQ step gradient and the surrogate of HGQ (Sun et al., 2024).
* Where ``x`` is clipped, ``x_q`` is the saturation level ``+-2**r`` (up to one step), so
  ``d x_q / d r = ln2 * x_q``: ``dL/dr = ln2 * sum(g * x_q)`` over the clipped elements. The
  range grows when the loss wants the clipped values larger in magnitude, and nothing holds it
  up when nothing clips: the resource penalty then shrinks it until clipping starts to cost.
* ``x`` gets the straight-through gradient inside the range and none where it was clipped.

The resource cost sees the width through :meth:`WidthQuantizer.bit_widths`: the rounded width in
the forward pass, ``d width / d r = 1`` and ``d width / d p = -1`` (straight-through on the
rounding) where the width is positive, and nothing where it is 0 (a pruned granule stays pruned
unless the loss pulls it back). An activation's width stops at one magnitude bit: there its
width has no gradient, and its step is held at most half its range (``p <= r - 1``), so the
one bit left is the range's top bit, not a bit above every value. Likewise a per-tensor
constant keeps one bit: pruning is per channel or per weight, never a whole layer.

Example:
    >>> q = WidthQuantizer(8, signed=True)
    >>> q.calibrate(torch.linspace(-3, 3, 1000))
    >>> q.fixed_type.cpp()
    'ap_fixed<8,3,AP_RND,AP_SAT>'
    >>> w = WidthQuantizer(6, role="constant", granularity="channel", shape=(4,))
    >>> v = torch.randn(4, 3)
    >>> w.calibrate(v)
    >>> len(w.granule_types(v))
    4
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qfx.fixed.exact import quantize_double
from qfx.fixed.fake_quant import round_float
from qfx.fixed.fixed_type import MAX_WIDTH, FixedType
from qfx.fixed.quantizer import FixedQuantizer

__all__ = ["GRANULARITIES", "PRUNED_LOG2_LSB", "ROLES", "WidthQuantizer", "width_quantizers"]

#: one format per tensor, per channel (``channel_dim``) or per element (constants only)
GRANULARITIES = ("tensor", "channel", "element")
#: The step (log2) of a pruned granule of a constant (:meth:`WidthQuantizer.prune`): every
#: value rounds to 0 on it. No learned step comes near it (weights are far below 2**15).
PRUNED_LOG2_LSB = 32.0
#: ``activation``: learned range, fixed signedness; ``constant``: range and sign from the data
ROLES = ("activation", "constant")
_LN2 = math.log(2.0)
# Widest magnitude a learned format may reach (keeps every value exact in float64 / int64).
_MAX_MAG_BITS = 40
# An activation's step stays at most this quantile of its batch's magnitudes (_hold_alive),
# read from about this many evenly spaced values.
_ALIVE_QUANTILE = 0.9
_ALIVE_SAMPLE = 4096


class _WidthFakeQuant(torch.autograd.Function):
    """Fake quantisation with a per-element step ``2**round(p)``, magnitude bits ``b``, sign
    ``k`` (all broadcast against ``x``), saturating; gradients as in the module docstring."""

    @staticmethod
    def forward(ctx, x, p, r, b, k, rounding):
        pr = torch.round(p)
        q = round_float(x * torch.exp2(-pr).to(x.dtype), rounding)
        top = torch.exp2(b.to(x.dtype))
        hi = top - 1.0
        lo = torch.where(b > 0, -k * top, torch.zeros_like(top))
        qc = torch.minimum(torch.maximum(q, lo), hi)
        lsb = torch.exp2(pr).to(x.dtype)
        out = qc * lsb
        inside = qc == q
        ctx.save_for_backward(x, out, inside, q > qc, r, k, p)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, out, inside, above, r, k, p = ctx.saved_tensors
        grad_x = torch.where(inside, grad, 0.0) if ctx.needs_input_grad[0] else None
        grad_p = grad_r = None
        if ctx.needs_input_grad[1]:
            g = _LN2 * torch.where(inside, grad * (out - x), 0.0)
            grad_p = g.sum_to_size(p.shape) if g.shape != p.shape else g
        if ctx.needs_input_grad[2]:
            level = torch.exp2(torch.round(r)).to(x.dtype)
            bound = torch.where(above, level, -k * level)
            g = _LN2 * torch.where(inside, 0.0, grad * bound)
            grad_r = g.sum_to_size(r.shape) if g.shape != r.shape else g
        return grad_x, grad_p, grad_r, None, None, None


def _ste_round(v: torch.Tensor) -> torch.Tensor:
    return v + (torch.round(v) - v).detach()


def _bits_for_raw(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Magnitude bits holding raw integers in [lo, hi] (lo <= 0 <= hi), as float."""
    need = torch.maximum(hi + 1.0, -lo).clamp_min(1.0)
    return torch.ceil(torch.log2(need))


class WidthQuantizer(FixedQuantizer):
    """Quantise to ``ap_fixed`` with a learned width: learned step, learned (activations) or
    data-given (constants) range and sign; see the module docstring for the estimator.

    ``granularity``: ``"tensor"``, ``"channel"`` (``shape=(C,)``, along ``channel_dim``) or
    ``"element"`` (``shape`` = the constant's shape). ``width`` is the initial width. Only the
    saturating overflow mode is supported (a learned width that wraps has no useful gradient).

    Example:
        >>> q = WidthQuantizer(4, signed=False, int_bits=2)
        >>> q.eval()(torch.tensor([0.3, 9.0])).tolist()
        [0.25, 3.75]
    """

    def __init__(self, width: int = 8, signed: bool = True, rounding: str = "RND", *,
                 role: str = "activation", granularity: str = "tensor",
                 shape: tuple[int, ...] | None = None, channel_dim: int = 0,
                 int_bits: int | None = None) -> None:
        nn.Module.__init__(self)
        if role not in ROLES:
            raise ValueError(f"WidthQuantizer role {role!r}; allowed: {', '.join(ROLES)}")
        if granularity not in GRANULARITIES:
            raise ValueError(f"WidthQuantizer granularity {granularity!r}; allowed: "
                             f"{', '.join(GRANULARITIES)}")
        if granularity != "tensor" and not shape:
            raise ValueError(f"a {granularity} WidthQuantizer needs its shape")
        if role == "activation" and granularity != "tensor":
            raise ValueError("activation formats are per tensor (one FixedType per edge)")
        proto = FixedType(width, 0 if int_bits is None else int_bits, signed, rounding, "SAT")
        self.width, self.signed, self.rounding = proto.width, proto.signed, proto.rounding
        self.overflow, self.sat_bits = "SAT", 0
        self.role, self.granularity, self.channel_dim = role, granularity, channel_dim
        self.per_channel = granularity != "tensor"
        gshape = () if granularity == "tensor" else tuple(int(s) for s in shape)
        start_i = int_bits if int_bits is not None else 1
        k = int(self.signed)
        self.log2_lsb = nn.Parameter(torch.full(gshape, float(start_i - self.width)))
        self.log2_range = nn.Parameter(torch.full(gshape, float(start_i - k))) \
            if role == "activation" else None
        self.register_buffer("initialized", torch.tensor(int_bits is not None))
        self._ready = int_bits is not None
        self.enabled = True
        self._observed = None
        self.covers = False  # see FixedQuantizer.cover (activations only)
        self.register_buffer("range_seen", None, persistent=False)
        # a constant's held range (log2) and sign per granule (hold_format); None: the data's
        self.register_buffer("held_range", None)
        self.register_buffer("held_sign", None)
        self.register_buffer("held_zero", None)  # the values held at 0 (the constant's shape)
        self.format_held = False  # hold_format

    # ------------------------------------------------------------------ shapes
    def _view(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A granule tensor broadcast against ``x``."""
        if self.granularity != "channel":
            return v
        shape = [1] * x.dim()
        shape[self.channel_dim % x.dim()] = -1
        return v.reshape(shape)

    def _granule_reduce(self, t: torch.Tensor, fn) -> torch.Tensor:
        """Reduce an x-shaped tensor to one value per granule (``fn``: amin/amax)."""
        if self.granularity == "element":
            return t
        if self.granularity == "tensor":
            return fn(t)
        dims = [d for d in range(t.dim()) if d != self.channel_dim % t.dim()]
        return fn(t, dim=dims) if dims else t

    # ------------------------------------------------------------------ formats
    def _constant_bits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(magnitude bits, sign bit) per granule of a constant at the current step."""
        with torch.no_grad():
            q = round_float(x.detach().double() * torch.exp2(-self._view(
                torch.round(self.log2_lsb.detach()).double(), x)), self.rounding)
            if self.held_zero is not None:
                q = q.masked_fill(self.held_zero, 0.0)
            lo = self._granule_reduce(q.clamp(max=0.0), torch.amin)
            hi = self._granule_reduce(q.clamp(min=0.0), torch.amax)
            b = _bits_for_raw(lo, hi)
            k = (lo < 0).double()
            if self.held_range is not None:  # hold_format: past the range, saturate
                p = torch.round(self.log2_lsb.detach()).double()
                b = torch.minimum(b, (self.held_range.double() - p).clamp_min(0.0))
                k = k * self.held_sign.double()
            k = k * (b > 0).double()
        return b, k

    def _activation_bits(self) -> tuple[torch.Tensor, torch.Tensor]:
        b = (torch.round(self.log2_range.detach()) - torch.round(self.log2_lsb.detach()))
        k = torch.full_like(b, float(self.signed))
        return b.clamp(min=1, max=_MAX_MAG_BITS), k

    def _bits(self, x: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.role == "activation":
            return self._activation_bits()
        if x is None:
            raise ValueError("a constant's width depends on its values: pass them")
        return self._constant_bits(x)

    def bit_widths(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """Width (sign bit included) per granule, differentiable for the resource cost:
        the rounded value forward, ``+1`` per unit of ``log2_range`` and ``-1`` per unit of
        ``log2_lsb`` backward where the width is positive. ``x``: the constant's values."""
        b, k = self._bits(x)
        b = b.to(self.log2_lsb.dtype)
        if self.role == "activation":
            sur = _ste_round(self.log2_range) - _ste_round(self.log2_lsb)
            floor = sur.detach() <= 1.0  # at one bit the width cannot fall: no gradient
            sur = torch.where(floor, sur.detach(), sur)
            sur = sur + (b - sur).detach()  # the clamped value, the raw gradient
        else:
            sur = b + (self.log2_lsb.detach() - self.log2_lsb)
            if self.granularity == "tensor":  # held at one bit (_hold_constant): no gradient
                sur = torch.where(b <= 1, sur.detach(), sur)
        live = b > 0
        return torch.where(live, sur + k.to(sur.dtype), torch.zeros_like(sur))

    def granule_types(self, x: torch.Tensor | None = None) -> list[FixedType | None]:
        """One FixedType per granule (flattened), ``None`` where the width is 0 (pruned)."""
        b, k = self._bits(x)
        p = torch.round(self.log2_lsb.detach()).to(torch.int64).reshape(-1).tolist()
        out: list[FixedType | None] = []
        for bi, ki, pi in zip(b.reshape(-1).tolist(), k.reshape(-1).tolist(), p, strict=True):
            bi, ki = int(bi), int(ki)
            w = bi + ki
            out.append(None if bi <= 0 else FixedType(w, pi + w, bool(ki), self.rounding,
                                                      "SAT"))
        return out

    @property
    def int_bits(self) -> int | list[int]:
        """Integer bits (sign included): activations only (a constant's follow its values)."""
        if self.role == "constant":
            raise ValueError("a constant WidthQuantizer's integer bits follow its values: use "
                             "granule_types(values)")
        b, k = self._activation_bits()
        return int(torch.round(self.log2_lsb.detach()) + b + k)

    @property
    def fixed_type(self) -> FixedType:
        if self.role == "constant":
            raise ValueError("a constant WidthQuantizer has one format per granule: use "
                             "granule_types(values) or raw_and_type(values)")
        b, k = self._activation_bits()
        w = int(b + k)
        return FixedType(w, int(torch.round(self.log2_lsb.detach())) + w, bool(self.signed),
                         self.rounding, "SAT")

    @property
    def fixed_types(self) -> tuple[FixedType, ...]:
        return (self.fixed_type,)

    def extra_repr(self) -> str:
        g = f"{self.role}, {self.granularity}"
        if self.role == "activation" and self._ready:
            return f"{self.fixed_type.cpp()}, learned width, {g}"
        return f"learned width, {g}, {self.rounding}, SAT"

    def cover(self) -> WidthQuantizer:
        """See :meth:`FixedQuantizer.cover`: the learned range never falls below the largest
        magnitude seen in training (the width grows with it; the resource penalty can still
        coarsen the step). Activations only: a constant's range already holds its values.

        Example:
            >>> q = WidthQuantizer(8, int_bits=2).cover()
            >>> _ = q.train()(torch.tensor([-20.0, 3.0]))
            >>> q.fixed_type.cpp()
            'ap_fixed<12,6,AP_RND,AP_SAT>'
        """
        if self.role != "activation":
            raise ValueError("cover() applies to activation formats (a constant's range "
                             "already holds every value)")
        self.covers = True
        return self

    def _lift_to(self, top: torch.Tensor) -> None:
        floor = (top - 0.25).to(self.log2_range.dtype)
        torch.maximum(self.log2_range.data, floor, out=self.log2_range.data)

    # ------------------------------------------------------------------ forward
    @torch.no_grad()
    def _hold_constant(self, x: torch.Tensor) -> None:
        """A constant keeps its largest value nonzero (``p <= log2 max|x|`` for the granule
        that holds it: the rounded step is at most ``2**0.5`` times that value, which rounds
        to at least one step). Channels and weights may be pruned, not all of them: a
        zero-width tensor is a dead layer, and no gradient brings it back."""
        top = self._granule_reduce(x.detach().abs(), torch.amax).reshape(-1)
        lsb = self.log2_lsb.data.view(-1)
        if self.granularity != "tensor":  # pruned granules stay pruned, and none is kept
            gone = self.pruned().view(-1)
            lsb.masked_fill_(gone, PRUNED_LOG2_LSB)
            top = torch.where(gone, torch.zeros_like(top), top)
        i = torch.argmax(top)  # a tensor index: no host sync on the training hot path
        held = torch.minimum(lsb[i], torch.log2(top[i]).to(lsb.dtype))
        lsb[i] = torch.where(top[i] > 0, held, lsb[i])

    @torch.no_grad()
    def hold_format(self, x: torch.Tensor | None = None, *, keep: bool = False) -> None:
        """Hold the format where it is while the values keep training (the settle phase of
        :class:`qfx.training.budget.BudgetRegularizer`), so that the formats a budget measured
        stay; the step itself is held by its caller (no gradient). A constant's range and sign
        follow its values ``x``: they are held where ``x`` puts them now, and a value that
        grows past the range saturates to it (no gradient pushes it further) instead of
        widening the format; a granule with no negative value stays unsigned, and a value
        that rounds to 0 stays 0 (a nonzero constant costs a multiplier or an adder; zero ones
        the C++ leaves out). Its width can still fall (a coarser step, values that shrink),
        never grow; held again, it only narrows. The held range is part of the state dict (a
        checkpoint keeps the formats it was measured with). An activation's step is no longer
        refined in training to keep a tenth of its values nonzero (its range is a parameter,
        held by its caller). :meth:`release_format` undoes both. ``keep``: a held range the
        quantizer already has (e.g. loaded from a checkpoint) stays as it is.

        Example:
            >>> w = WidthQuantizer(4, role="constant", granularity="channel", shape=(2,))
            >>> v = torch.tensor([[0.5, 0.25], [1.0, -0.75]])
            >>> w.calibrate(v)
            >>> w.hold_format(v)
            >>> w.eval()(v * 4).tolist()  # the first channel held unsigned below 1
            [[0.875, 0.875], [1.75, -2.0]]
        """
        self.format_held = True
        if self.role == "activation":
            return
        if keep and self.held_range is not None:
            return
        if x is None:
            raise ValueError("a constant's format depends on its values: pass them")
        self.held_zero = self.to_int(x) == 0
        b, k = self._constant_bits(x)
        p = torch.round(self.log2_lsb.detach()).double()
        self.held_range = (p + b).to(self.log2_lsb.dtype)
        self.held_sign = k.to(self.log2_lsb.dtype)

    def release_format(self) -> None:
        """Undo :meth:`hold_format`: a constant's range and sign follow its values again, an
        activation's step is kept alive in training again."""
        self.format_held = False
        self.held_range = self.held_sign = self.held_zero = None

    #: buffers that exist only once set (hold_format): a state dict may carry them or not
    optional_state = ("held_range", "held_sign", "held_zero")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the optional buffers follow the state dict: room for one it carries, none otherwise
        for name in self.optional_state:
            key = prefix + name
            if key in state_dict:
                if getattr(self, name) is None:
                    setattr(self, name, torch.empty_like(state_dict[key]))
            else:
                setattr(self, name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def prune(self, granule: int) -> None:
        """Prune one granule (a channel, or a weight) of a constant for good: every value of
        it quantizes to 0, its width is 0, and the frozen graph leaves it out. Its step is
        pinned at :data:`PRUNED_LOG2_LSB` (re-pinned at every forward pass, so no gradient
        step brings it back; the rule that keeps a tensor's largest value alive skips it).

        Example:
            >>> w = WidthQuantizer(4, role="constant", granularity="channel", shape=(2,))
            >>> v = torch.tensor([[0.5, -0.25], [1.0, 0.75]])
            >>> w.calibrate(v)
            >>> w.prune(1)
            >>> w(v)[1].tolist(), [t is None for t in w.granule_types(v)]
            ([0.0, 0.0], [False, True])
        """
        if self.role != "constant" or self.granularity == "tensor":
            raise ValueError("only a granule of a per-channel or per-element constant can be "
                             "pruned")
        self.log2_lsb.data.view(-1)[granule] = PRUNED_LOG2_LSB

    def pruned(self) -> torch.Tensor:
        """Per granule: pruned by :meth:`prune` (bool, the granules' shape)."""
        return self.log2_lsb.detach() >= PRUNED_LOG2_LSB / 2

    @torch.no_grad()
    def _hold_floor(self) -> None:
        """Keep the step at most half the range (``p <= r - 1``). The width never falls below
        one magnitude bit; were the step left to pass the range, that one bit would sit above
        every value and the activation would be all zeros, with no gradient to bring it back.
        At the floor the format is the range's top bit."""
        torch.minimum(self.log2_lsb.data, self.log2_range.data - 1.0, out=self.log2_lsb.data)

    @torch.no_grad()
    def _hold_alive(self, x: torch.Tensor) -> None:
        """In training, keep the step at most the batch's 90th-percentile magnitude ``t``
        (``round(p) <= log2 t``; an unsigned format reads the positive values), so that at
        least a tenth of the values stay nonzero whatever the rounding. The floor above is
        relative to the range, which only clipping pulls on: a range left far above the data
        lets the step pass every value, the layer goes all zero, the ReLU after it passes no
        gradient, and nothing brings it back."""
        flat = x.detach().reshape(-1)
        if flat.numel() == 0:
            return
        sample = flat[::max(1, flat.numel() // _ALIVE_SAMPLE)].float()
        sample = sample.abs() if self.signed else sample.clamp_min(0.0)  # what it can hold
        t = sample.kthvalue(max(1, math.ceil(_ALIVE_QUANTILE * sample.numel()))).values
        t = torch.where(t > 0, t, sample.max())  # tensors throughout: no host sync per step
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)  # ranks agree
        cap = torch.where(t > 0, torch.log2(t) - 0.5, torch.full_like(t, math.inf))
        torch.minimum(self.log2_lsb.data, cap.to(self.log2_lsb.dtype), out=self.log2_lsb.data)

    def _fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        if self.log2_range is not None:  # an activation keeps at least its top bit in range
            self._hold_floor()
            if self.training and not self.format_held:  # and a tenth of its values
                self._hold_alive(x)
        else:  # a whole tensor is never pruned
            self._hold_constant(x)
        b, k = self._bits(x)
        b, k = b.to(x.dtype), k.to(x.dtype)
        if self.log2_range is not None:
            r = self.log2_range
        else:  # a constant's range is given by its values: no gradient
            r = torch.round(self.log2_lsb.detach()).to(x.dtype) + b
        out = _WidthFakeQuant.apply(x, self._view(self.log2_lsb, x), self._view(r, x),
                                    self._view(b, x), self._view(k, x), self.rounding)
        return out if self.held_zero is None else out.masked_fill(self.held_zero, 0.0)

    @torch.no_grad()
    def to_int(self, x: torch.Tensor) -> torch.Tensor:
        """Raw int64 mantissas of ``x``, each on its granule's own step (0 where pruned)."""
        x = x.detach().double()
        b, k = self._bits(x)
        frac = self._view(-torch.round(self.log2_lsb.detach()).to(torch.int64), x)
        # saturating at the widest granule's width first changes nothing (the clamp below is
        # inside it) and lets quantize_double take its float64 path (<= 50 bits)
        width = min(MAX_WIDTH, int(b.max()) + 1 if b.numel() else 1)
        raw = quantize_double(x, frac, width=width, signed=True, rounding=self.rounding,
                              overflow="SAT", sat_bits=0)
        top = torch.exp2(self._view(b, x)).to(torch.int64)
        lo = torch.where(self._view(b, x) > 0, -self._view(k, x).to(torch.int64) * top, 0)
        raw = torch.minimum(torch.maximum(raw, lo), top - 1)
        return raw if self.held_zero is None else raw.masked_fill(self.held_zero, 0)

    @torch.no_grad()
    def quantize_exact(self, x: torch.Tensor) -> torch.Tensor:
        """The exact value of ``x`` in its learned formats (float64)."""
        x = x.detach().double()
        raw = self.to_int(x)
        p = self._view(torch.round(self.log2_lsb.detach()).double(), x)
        return torch.ldexp(raw.double(), p)

    def raw_and_type(self, x: torch.Tensor) -> tuple[torch.Tensor, FixedType]:
        """Raw integers of ``x`` on the finest granule's grid (exact: a left shift per
        granule) and the least FixedType holding them: what ``qfx.freeze`` stores."""
        raw = self.to_int(x)
        p = torch.round(self.log2_lsb.detach()).to(torch.int64)
        frac = int(-p.min())
        raw = torch.bitwise_left_shift(raw, self._view(frac + p, raw).expand_as(raw))
        return raw, FixedType.for_raw_range(int(raw.min()), int(raw.max()), frac)

    # ------------------------------------------------------------------ calibration
    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, search: int = 8) -> None:
        """Initial formats from data at the initial width: activations cover ``max|x|``;
        constants get the step that gives their largest magnitude ``width - k`` bits."""
        x = x.detach().double()
        amax = self._granule_reduce(x.abs(), torch.amax)
        top = torch.where(amax > 0, torch.floor(torch.log2(amax.clamp_min(1e-300))) + 1,
                          torch.ones_like(amax))
        k = float(self.signed) if self.role == "activation" else 1.0
        p = top - (self.width - k)
        self.log2_lsb.data.copy_(p.to(self.log2_lsb.dtype).expand_as(self.log2_lsb))
        if self.log2_range is not None:
            self.log2_range.data.copy_(top.to(self.log2_range.dtype).expand_as(
                self.log2_range))
        self.initialized.fill_(True)
        self._ready = True

    def _observe(self, x: torch.Tensor) -> None:
        if self.role == "constant":  # the same tensor every time: keep it whole
            self._observed[:] = [x.detach()]
        else:
            self._observed.append(x.detach().reshape(-1)[:1 << 16])

    def finish_observing(self) -> None:
        observed, self._observed = self._observed, None
        if observed:
            self.calibrate(observed[0] if self.role == "constant" else torch.cat(observed))


def width_quantizers(model: nn.Module) -> dict[str, WidthQuantizer]:
    """Every WidthQuantizer of ``model`` by module name.

    Example:
        >>> list(width_quantizers(nn.Sequential(WidthQuantizer(8))))
        ['0']
    """
    return {n: m for n, m in model.named_modules() if isinstance(m, WidthQuantizer)}
