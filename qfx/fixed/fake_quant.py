"""Training-time fake quantisation (float32, straight-through) with a learnable binary point.

The forward pass rounds ``x / lsb`` with the chosen ap_fixed rounding mode and applies the
overflow mode, all in the input's float dtype. The backward pass gives

* ``x``: a straight-through gradient inside the representable range, zero outside;
* ``log2(lsb)``: the quantisation-error gradient of TQT/LSQ,
  ``ln2 * lsb * (round(x/lsb) - x/lsb)`` inside the range and ``ln2 * lsb * q_min|q_max``
  where the value was clamped (or wrapped), so a range that is too small grows and one
  that is too large shrinks.
"""

from __future__ import annotations

import math

import torch

__all__ = ["round_float", "fake_quantize"]

_LN2 = math.log(2.0)


def round_float(y: torch.Tensor, rounding: str) -> torch.Tensor:
    """Round float values to integers with an ap_fixed quantisation mode (no overflow)."""
    if rounding == "TRN":
        return torch.floor(y)
    if rounding == "TRN_ZERO":
        return torch.trunc(y)
    if rounding == "RND":
        return torch.floor(y + 0.5)
    if rounding == "RND_CONV":
        return torch.round(y)  # ties to even
    if rounding == "RND_MIN_INF":
        return torch.ceil(y - 0.5)
    if rounding == "RND_ZERO":
        return torch.sign(y) * torch.ceil(torch.abs(y) - 0.5)
    if rounding == "RND_INF":
        return torch.sign(y) * torch.floor(torch.abs(y) + 0.5)
    raise ValueError(f"unknown rounding mode {rounding!r}")


def _overflow_float(q: torch.Tensor, overflow: str, qmin: float, qmax: float, width: int,
                    signed: bool) -> torch.Tensor:
    if overflow == "SAT":
        return q.clamp(qmin, qmax)
    if overflow == "SAT_SYM":
        return q.clamp(-qmax if signed else qmin, qmax)
    if overflow == "SAT_ZERO":
        return torch.where((q < qmin) | (q > qmax), torch.zeros_like(q), q)
    if overflow == "WRAP":
        return torch.remainder(q - qmin, 2.0**width) + qmin
    raise ValueError(f"overflow mode {overflow!r} has no float fast path")


class _FakeQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, log2_lsb, reduce_dims, qmin, qmax, width, signed, rounding, overflow,
                exact_fn):
        p = torch.round(log2_lsb)
        lsb = torch.exp2(p).to(x.dtype)
        y = x / lsb
        q = round_float(y, rounding)
        inside = (q >= qmin) & (q <= qmax)
        if exact_fn is not None:  # modes without a float formula (WRAP_SM, WRAP with N > 0)
            out = exact_fn(x, p).to(x.dtype)
        else:
            out = _overflow_float(q, overflow, qmin, qmax, width, signed) * lsb
        # d out / d log2(lsb), divided by ln2 * lsb: (q - y) inside, the clamp bound outside.
        err = torch.where(inside, q - y, q.clamp(qmin, qmax))
        ctx.save_for_backward(inside, err, lsb)
        ctx.reduce_dims = reduce_dims
        ctx.p_shape = log2_lsb.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        inside, err, lsb = ctx.saved_tensors
        grad_x = grad * inside if ctx.needs_input_grad[0] else None
        grad_p = None
        if ctx.needs_input_grad[1]:
            g = grad * err
            g = g.sum(dim=ctx.reduce_dims) if ctx.reduce_dims else g.sum()
            grad_p = (g * (_LN2 * lsb.reshape(g.shape))).reshape(ctx.p_shape)
        return grad_x, grad_p, None, None, None, None, None, None, None, None


def fake_quantize(
    x: torch.Tensor,
    log2_lsb: torch.Tensor,
    *,
    width: int,
    signed: bool,
    rounding: str,
    overflow: str,
    channel_dim: int | None = None,
    exact_fn=None,
) -> torch.Tensor:
    """Differentiable fake quantisation of ``x`` to ``width`` bits with step ``2**round(log2_lsb)``.

    ``log2_lsb`` is a scalar tensor, or a vector with one entry per slice of ``channel_dim``.

    Example:
        >>> p = torch.tensor(-2.0, requires_grad=True)
        >>> fake_quantize(torch.tensor([0.3, 9.0]), p, width=4, signed=True, rounding="RND",
        ...               overflow="SAT").tolist()
        [0.25, 1.75]
    """
    qmax = float(2 ** (width - 1) - 1 if signed else 2**width - 1)
    qmin = float(-(2 ** (width - 1)) if signed else 0)
    if log2_lsb.dim() == 0:
        reduce_dims: tuple[int, ...] = ()
        p = log2_lsb
    else:
        if channel_dim is None:
            raise ValueError("a per-channel binary point needs channel_dim")
        cd = channel_dim % x.dim()
        shape = [1] * x.dim()
        shape[cd] = -1
        p = log2_lsb.reshape(shape)
        reduce_dims = tuple(d for d in range(x.dim()) if d != cd)
    return _FakeQuant.apply(x, p, reduce_dims, qmin, qmax, width, signed, rounding, overflow,
                            exact_fn)
