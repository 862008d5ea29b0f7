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

from qfx.fixed import fake_quant_kernel

__all__ = ["round_float", "fake_quantize", "relu_fake_quantize", "grid_of"]

_LN2 = math.log(2.0)
# Benchmarks set this to time the unfused reference in place of the fused path.
_FORCE_REFERENCE = False
# Benchmarks and tests set this to run the torch fused path in place of the C kernel.
_FORCE_TORCH_FUSED = False


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


def _round_into(y: torch.Tensor, rounding: str) -> torch.Tensor:
    """Round ``y`` (a temporary) in place where the mode allows it."""
    if rounding == "RND":
        return y.add_(0.5).floor_()
    if rounding == "TRN":
        return y.floor_()
    if rounding == "RND_CONV":
        return y.round_()
    if rounding == "TRN_ZERO":
        return y.trunc_()
    return round_float(y, rounding)


class _FakeQuant(torch.autograd.Function):
    """Fused fake quantisation: one autograd-function forward computes the value, the in-range
    mask and the per-element quantisation error ``err`` that the binary-point gradient needs
    (about seven elementwise torch kernels, the last two writing into the rounded value's
    buffer); the backward is then one masked copy (the STE) and one dot product / per-channel
    sum, instead of five kernels.

    The binary point reaches the kernels only as a tensor (``log2_lsb``, rounded on the device),
    so nothing is read back to the host and nothing depends on its current value as a Python
    number. Saved for backward: ``err`` (float) and the mask (bool), instead of ``x``, the
    clamped value and the mask; ``err`` is only formed when the binary point needs a gradient.

    ``err`` is ``lsb * (qc - x/lsb)`` inside the range (the rounding error) and ``lsb * qc``
    where the value was clamped or wrapped; it is formed per element, before any sum (two
    large float32 sums would cancel), with exactly the reference's float operations, so
    values and gradients equal :class:`_FakeQuantReference`'s bit for bit.
    """

    @staticmethod
    def forward(ctx, x, log2_lsb, reduce_dims, qmin, qmax, width, signed, rounding, overflow,
                exact_fn):
        p = torch.round(log2_lsb)
        lsb = torch.exp2(p).to(x.dtype)
        inv = torch.exp2(-p).to(x.dtype)  # exact: a power of two
        if rounding == "RND":  # 0.5 + x / lsb in one pass, then floor in place
            q = torch.addcmul(torch.tensor(0.5, dtype=x.dtype, device=x.device), x, inv).floor_()
        else:
            q = _round_into(x * inv, rounding)
        qc = q.clamp(qmin, qmax)
        inside = qc == q
        if exact_fn is not None:  # modes without a float formula (WRAP_SM, WRAP with N > 0)
            out = exact_fn(x, p).to(x.dtype)
            clamped = qc.mul_(lsb)
        elif overflow == "SAT":
            out = clamped = qc.mul_(lsb)
        else:  # SAT_SYM, SAT_ZERO, WRAP: a new tensor, so q is free afterwards
            out = _overflow_float(q, overflow, qmin, qmax, width, signed).mul_(lsb)
            clamped = qc.mul_(lsb)
        err = None
        if ctx.needs_input_grad[1]:
            # q is free now: clamped - x (the in-range error) and then the clamped value where
            # out of range, both into q's buffer (no new allocation: elementwise, same index).
            err = torch.where(inside, torch.sub(clamped, x, out=q), clamped, out=q)
        ctx.save_for_backward(err, inside)
        ctx.reduce_dims = reduce_dims
        ctx.p_shape = log2_lsb.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        err, inside = ctx.saved_tensors
        grad_p = None
        if ctx.needs_input_grad[1]:
            if ctx.reduce_dims:
                g = (grad * err).sum(ctx.reduce_dims, dtype=torch.float64)
            else:
                g = torch.dot(grad.reshape(-1).double(), err.reshape(-1).double()) \
                    if grad.numel() > (1 << 24) else torch.dot(grad.reshape(-1), err.reshape(-1))
            grad_p = (_LN2 * g).reshape(ctx.p_shape).to(grad.dtype)
        grad_x = torch.where(inside, grad, 0.0) if ctx.needs_input_grad[0] else None
        return grad_x, grad_p, None, None, None, None, None, None, None, None


class _FakeQuantKernel(torch.autograd.Function):
    """:class:`_FakeQuant` on the C kernel (:mod:`qfx.fixed.fake_quant_kernel`), forward and
    backward each one pass over the data.

    Forward: the same output, mask and ``err`` as :class:`_FakeQuantReference`, bit for bit.
    With ``p_host`` (a per-tensor binary point already read on the host, an int) the step and
    its inverse go to the kernel as numbers: none of the small tensor operations that form them
    on the device.

    Backward: the input gradient ``where(inside, grad, 0)`` (the reference's, bit for bit) and,
    in the same pass, the binary-point gradient ``ln2 * sum(grad * err)`` with the products and
    the sum in float64 in a fixed order (independent of the thread count): the same sum as the
    reference's float32 dot product or float64 sum of float32 products, more accurately
    rounded (tests/fixed/test_fake_quant_kernel.py bounds both against the exact sum).
    """

    @staticmethod
    def forward(ctx, x, log2_lsb, qmin, qmax, width, signed, rounding, overflow, lib,
                channel_dim, p_host):
        if p_host is not None:
            out, err, inside = fake_quant_kernel.forward_scalar(
                lib, x, 2.0**p_host, 2.0**-p_host, qmin, qmax, width, signed, rounding,
                overflow, ctx.needs_input_grad[1])
        else:
            p = torch.round(log2_lsb)
            lsb = torch.exp2(p).to(x.dtype)
            inv = torch.exp2(-p).to(x.dtype)  # exact: a power of two
            out, err, inside = fake_quant_kernel.forward(
                lib, x, lsb, inv, channel_dim, qmin, qmax, width, signed, rounding, overflow,
                ctx.needs_input_grad[1])
        ctx.save_for_backward(err, inside)
        ctx.lib, ctx.channels = lib, log2_lsb.numel()
        ctx.rows, ctx.inner = fake_quant_kernel.layout(x, ctx.channels, channel_dim)
        ctx.p_shape = log2_lsb.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        err, inside = ctx.saved_tensors
        grad_x, sums = fake_quant_kernel.backward(ctx.lib, grad, err, inside, ctx.rows,
                                                  ctx.inner, ctx.channels, ctx.needs_input_grad[0])
        grad_p = None
        if sums is not None and not ctx.p_shape:  # per tensor: a 0-dim tensor at once
            grad_p = torch.tensor(_LN2 * sums[0], dtype=grad.dtype)
        elif sums is not None:
            grad_p = torch.tensor([_LN2 * s for s in sums], dtype=grad.dtype
                                  ).reshape(ctx.p_shape)
        return grad_x, grad_p, None, None, None, None, None, None, None, None, None


def _kernel_for(x: torch.Tensor, rounding: str, overflow: str, exact_fn) -> object | None:
    """The C kernel library when it handles this call, else None (the torch fused path)."""
    if exact_fn is not None or not fake_quant_kernel.supports(x, rounding, overflow):
        return None
    return fake_quant_kernel.load_kernel()


# ---------------------------------------------------------------- grid tags (CPU training)
# A training output of the kernel's per-tensor path carries ``_qfx_grid = (kmin, kmax, p,
# version)``: every value is k * 2**p with integer kmin <= k <= kmax, or NaN (from a NaN
# input), as long as the tensor's version counter is still ``version`` (not modified in place
# since). A cast whose grid and range hold all of these values exactly is the identity on them
# (see relu_fake_quantize, which also rules out NaN).
_HOST_P_MAX = 100     # |p| up to this: 2**p and 2**-p are normal float32 numbers
_GRID_WIDTH_MAX = 20  # k * 2**d (|k| < 2**20) and k + 0.5 stay exact in float32


def _host_p(log2_lsb: torch.Tensor) -> int | None:
    """``round(log2_lsb)`` as an int for a per-tensor binary point on the CPU (reading it there
    is no device synchronisation), or None (per channel, another device, out of range)."""
    if log2_lsb.dim() != 0 or log2_lsb.device.type != "cpu":
        return None
    v = log2_lsb.item()
    if not math.isfinite(v):
        return None
    p = round(v)  # ties to even, as torch.round
    return p if -_HOST_P_MAX <= p <= _HOST_P_MAX else None


def grid_of(x: torch.Tensor) -> tuple[int, int, int] | None:
    """``(kmin, kmax, p)`` of a tagged tensor not modified since, else None."""
    tag = getattr(x, "_qfx_grid", None)
    if tag is None or tag[3] != x._version:
        return None
    return tag[:3]


def _tag(y: torch.Tensor, kmin: int, kmax: int, p: int) -> torch.Tensor:
    y._qfx_grid = (kmin, kmax, p, y._version)
    return y


class _ReluOnGrid(torch.autograd.Function):
    """``relu`` followed by a fake quantisation that is provably the identity on its input
    (:func:`relu_fake_quantize`): the forward is ``torch.relu``; the backward is relu's
    (``threshold_backward``) and the binary-point gradient of a cast whose error is zero
    everywhere, ``ln2 * sum(grad * 0)``: +0, or NaN where ``grad`` has an infinity or NaN,
    as the reference gives."""

    @staticmethod
    def forward(ctx, x, log2_lsb, lib):
        out = torch.relu(x)
        ctx.save_for_backward(out)
        ctx.lib, ctx.p_shape = lib, log2_lsb.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        grad_x = torch.ops.aten.threshold_backward(grad, out, 0) \
            if ctx.needs_input_grad[0] else None
        grad_p = None
        if ctx.needs_input_grad[1]:
            bad = fake_quant_kernel.count_nonfinite(ctx.lib, grad)
            grad_p = torch.full(ctx.p_shape, math.nan if bad else 0.0, dtype=grad.dtype)
        return grad_x, grad_p, None


def relu_fake_quantize(x: torch.Tensor, log2_lsb: torch.Tensor, *, width: int, signed: bool,
                       rounding: str, overflow: str) -> torch.Tensor:
    """``fake_quantize(torch.relu(x), ...)`` (per-tensor binary point), the same values and
    gradients; when ``x`` is the untouched output of a fake quantisation (its grid tag) whose
    values, after relu, all lie on this quantizer's grid and in its range, the cast changes
    nothing (the rounding of an integer is itself, nothing overflows) and is skipped.

    Example:
        >>> p = torch.tensor(-2.0, requires_grad=True)
        >>> relu_fake_quantize(torch.tensor([-1.0, 0.3]), p, width=4, signed=False,
        ...                    rounding="RND", overflow="SAT").tolist()
        [0.0, 0.25]
    """
    qmax = 2 ** (width - 1) - 1 if signed else 2**width - 1
    qmin = -(2 ** (width - 1)) if signed else 0
    grid = grid_of(x)
    if grid is not None and width <= _GRID_WIDTH_MAX and not _FORCE_REFERENCE \
            and not _FORCE_TORCH_FUSED:
        p = _host_p(log2_lsb)
        lib = fake_quant_kernel.load_kernel()
        kmin, kmax, p1 = max(grid[0], 0), max(grid[1], 0), grid[2]
        if p is not None and lib is not None and p <= p1 and kmin << (p1 - p) >= qmin \
                and kmax << (p1 - p) <= qmax and not fake_quant_kernel.count_nonfinite(lib, x):
            return _tag(_ReluOnGrid.apply(x, log2_lsb, lib), kmin, kmax, p1)
    return fake_quantize(torch.relu(x), log2_lsb, width=width, signed=signed, rounding=rounding,
                         overflow=overflow)


class _FakeQuantReference(torch.autograd.Function):
    # The original two-stage implementation, kept as the reference of the fused one
    # (tests/fixed/test_fake_quant_fused.py): same forward, same gradients.
    # With out = clamp(q) * lsb, the binary-point gradient ln2 * lsb * err (err = q - x/lsb
    # inside the range, the clamp bound outside) is ln2 * (clamped - x * inside): lsb cancels,
    # so backward needs only the in-range mask, x and the clamped output. The difference is
    # formed per element before any sum: two large float32 sums would cancel.
    @staticmethod
    def forward(ctx, x, log2_lsb, reduce_dims, qmin, qmax, width, signed, rounding, overflow,
                exact_fn):
        p = torch.round(log2_lsb)
        lsb = torch.exp2(p).to(x.dtype)
        inv = torch.exp2(-p).to(x.dtype)  # exact: a power of two
        if rounding == "RND":  # 0.5 + x / lsb in one pass, then floor in place
            q = torch.addcmul(torch.tensor(0.5, dtype=x.dtype, device=x.device), x, inv).floor_()
        else:
            q = _round_into(x * inv, rounding)
        qc = q.clamp(qmin, qmax)
        inside = qc == q
        if exact_fn is not None:  # modes without a float formula (WRAP_SM, WRAP with N > 0)
            out = exact_fn(x, p).to(x.dtype)
            clamped = qc.mul_(lsb)
        elif overflow in ("SAT", "SAT_SYM", "SAT_ZERO"):
            out = clamped = (_overflow_float(q, overflow, qmin, qmax, width, signed)
                             if overflow != "SAT" else qc).mul_(lsb)
            if overflow != "SAT":
                clamped = qc.mul_(lsb)
        else:
            out = _overflow_float(q, overflow, qmin, qmax, width, signed).mul_(lsb)
            clamped = qc.mul_(lsb)
        ctx.save_for_backward(x, clamped, inside)
        ctx.reduce_dims = reduce_dims
        ctx.p_shape = log2_lsb.shape
        return out

    @staticmethod
    def backward(ctx, grad):
        x, clamped, inside = ctx.saved_tensors
        grad_in = torch.where(inside, grad, 0.0)  # no bool -> float copy of the mask
        grad_p = None
        if ctx.needs_input_grad[1]:
            err = torch.where(inside, clamped - x, clamped)
            if ctx.reduce_dims:
                g = (grad * err).sum(ctx.reduce_dims, dtype=torch.float64)
            else:
                g = torch.dot(grad.reshape(-1).double(), err.reshape(-1).double()) \
                    if grad.numel() > (1 << 24) else torch.dot(grad.reshape(-1), err.reshape(-1))
            grad_p = (_LN2 * g).reshape(ctx.p_shape).to(grad.dtype)
        grad_x = grad_in if ctx.needs_input_grad[0] else None
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
    _reference: bool = False,
) -> torch.Tensor:
    """Differentiable fake quantisation of ``x`` to ``width`` bits with step ``2**round(log2_lsb)``.

    ``log2_lsb`` is a scalar tensor, or a vector with one entry per slice of ``channel_dim``.
    ``_reference`` selects the unfused reference implementation (for tests).

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
    if _reference or _FORCE_REFERENCE:
        return _FakeQuantReference.apply(x, p, reduce_dims, qmin, qmax, width, signed,
                                         rounding, overflow, exact_fn)
    lib = None if _FORCE_TORCH_FUSED else _kernel_for(x, rounding, overflow, exact_fn)
    if lib is not None:
        p_host = _host_p(log2_lsb)
        y = _FakeQuantKernel.apply(x, p, qmin, qmax, width, signed, rounding, overflow, lib,
                                   None if log2_lsb.dim() == 0 else cd, p_host)
        if p_host is not None and width <= _GRID_WIDTH_MAX:
            _tag(y, int(qmin), int(qmax), p_host)
        return y
    return _FakeQuant.apply(x, p, reduce_dims, qmin, qmax, width, signed, rounding, overflow,
                            exact_fn)
