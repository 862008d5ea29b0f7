"""The one-pass C kernel of fake quantisation (``_FakeQuantKernel``) against the unfused
reference (``_FakeQuantReference``): the same forward values and input gradients, ``==``, for
every rounding x overflow mode it handles, float32 and float64, per tensor and per channel, on
grid values, ties, out-of-range values, huge and subnormal values, infinities, NaN and signed
zeros, with one and several threads. The binary-point gradient is the same sum
``ln2 * sum(grad * err)`` accumulated in float64 in a fixed order (the reference sums float32
products, or in float32): it is checked against the exactly rounded sum (``math.fsum``) with
the bound of a float64 summation, and ``==`` across thread counts. The kernel is required here
(``QFX_FAKE_QUANT_KERNEL=c``): a missing compiler fails these tests loudly."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from qfx.fixed import fake_quant, fake_quant_kernel
from qfx.fixed.fake_quant import fake_quantize

ROUNDINGS = tuple(fake_quant_kernel.ROUNDING_IDS)
OVERFLOWS = tuple(fake_quant_kernel.OVERFLOW_IDS)


@pytest.fixture
def require_kernel(monkeypatch):
    monkeypatch.setenv("QFX_FAKE_QUANT_KERNEL", "c")
    assert fake_quant_kernel.load_kernel() is not None


def _values(dtype: torch.dtype, n_random: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    special = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e30, -1e30, 1e-40,
               -1e-40, 3e38, -3e38, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5]
    grid = torch.arange(-80, 80, dtype=torch.float64) / 16.0
    return torch.cat([torch.tensor(special, dtype=torch.float64), grid, grid + 1 / 32,
                      torch.randn(n_random, generator=g, dtype=torch.float64) * 4,
                      torch.randn(n_random, generator=g, dtype=torch.float64) * 1e6]).to(dtype)


def _grads(x, log2_lsb, channel_dim, kernel: bool, **kw):
    x = x.clone().requires_grad_(True)
    p = log2_lsb.clone().requires_grad_(True)
    y = fake_quantize(x, p, channel_dim=channel_dim, _reference=not kernel, **kw)
    g = torch.linspace(-1.0, 1.5, y.numel(), dtype=y.dtype).reshape(y.shape)
    saved = None if kernel else [t.detach().clone() for t in y.grad_fn.saved_tensors]
    y.backward(g)
    return y.detach(), x.grad, p.grad, (g, saved)


def _check_binary_point_grad(got: torch.Tensor, ref, channel_dim) -> None:
    """``got`` against ``ln2 * sum(grad * err)`` per channel summed exactly from the
    reference's saved tensors (``err = where(inside, clamped - x, clamped)``): within the
    bound of a float64 sum of n terms (``(n + 10) * 2**-53 * sum|terms|``) plus the final
    rounding to the dtype; non-finite sums as the reference (NaN, or the same infinity)."""
    p_ref, (g, (x, clamped, inside)) = ref[2], ref[3]
    err = torch.where(inside, clamped - x, clamped)
    if channel_dim is None:
        rows = [(g.reshape(-1), err.reshape(-1))]
    else:
        cd = channel_dim % g.dim()
        rows = [(g.select(cd, c).reshape(-1), err.select(cd, c).reshape(-1))
                for c in range(g.shape[cd])]
    eps = 2.0**-23 if got.dtype == torch.float32 else 2.0**-52
    tiny = 2.0**-149 if got.dtype == torch.float32 else 2.0**-1074
    for c, (gc, ec) in enumerate(rows):
        gv, ev = gc.double().tolist(), ec.double().tolist()
        value = float(got.reshape(-1)[c])
        if not all(math.isfinite(a * b) for a, b in zip(gv, ev, strict=True)):
            assert _same(got.reshape(-1)[c:c + 1], p_ref.reshape(-1)[c:c + 1]), (c, value)
            continue
        # fsum is the exactly rounded sum of the float64 products, which are exact for
        # float32 data and within 2**-53 of exact for float64 data (one more term's bound).
        target = math.log(2.0) * math.fsum(a * b for a, b in zip(gv, ev, strict=True))
        mag = math.log(2.0) * math.fsum(abs(a * b) for a, b in zip(gv, ev, strict=True))
        bound = (len(gv) + 12) * 2.0**-53 * mag + eps * abs(target) + tiny
        if abs(target) * (1 - eps) > torch.finfo(got.dtype).max:
            assert math.isinf(value) and (value > 0) == (target > 0), (c, value, target)
        else:
            assert abs(value - target) <= bound, (c, value, target, bound)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    nan = torch.isnan(a)
    return a.dtype == b.dtype and torch.equal(nan, torch.isnan(b)) and torch.equal(a[~nan],
                                                                                  b[~nan])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_kernel_equals_reference(require_kernel, dtype, rounding):
    calls = []
    real = fake_quant._FakeQuantKernel.apply
    fake_quant._FakeQuantKernel.apply = lambda *a: calls.append(1) or real(*a)
    try:
        for overflow in OVERFLOWS:
            for signed in (True, False):
                kw = dict(width=6, signed=signed, rounding=rounding, overflow=overflow)
                x = _values(dtype, 300)
                x = x[: len(x) // 6 * 6]
                for log2_lsb, shape, cd in [
                    (torch.tensor(-3.4), (-1,), None),
                    (torch.tensor(-140.0), (-1,), None),  # huge x / lsb: inf, overflow
                    (torch.tensor(120.0), (-1,), None),   # tiny x / lsb: subnormal, zero
                    (torch.tensor([-4.0, -2.6, 1.0]), (-1, 3, 2), 1),
                    (torch.tensor([-4.0, -2.6, 1.0, 0.2, -6.0, -3.0]), (6, -1), 0),
                    (torch.tensor([-1.0, -5.0]), (-1, 3, 2), -1),
                ]:
                    xs = x.reshape(shape)
                    got = _grads(xs, log2_lsb.to(dtype), cd, True, **kw)
                    ref = _grads(xs, log2_lsb.to(dtype), cd, False, **kw)
                    for a, b in zip(got[:2], ref[:2], strict=True):
                        assert _same(a, b), (overflow, signed, log2_lsb, cd)
                    _check_binary_point_grad(got[2], ref, cd)
    finally:
        fake_quant._FakeQuantKernel.apply = real
    assert len(calls) == len(OVERFLOWS) * 2 * 6  # the kernel really ran every case


@pytest.mark.parametrize("per_channel", [False, True])
def test_kernel_threads_split_rows(require_kernel, per_channel):
    """Large inputs are split across threads mid-row: still equal to the reference."""
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        x = torch.randn(5, 7, 61, 67) * 3
        p = torch.linspace(-5, -2, 7) if per_channel else torch.tensor(-3.0)
        kw = dict(width=5, signed=True, rounding="RND", overflow="WRAP")
        got = _grads(x, p, 1 if per_channel else None, True, **kw)
        ref = _grads(x, p, 1 if per_channel else None, False, **kw)
        assert all(torch.equal(a, b) for a, b in zip(got[:2], ref[:2], strict=True))
        _check_binary_point_grad(got[2], ref, 1 if per_channel else None)
        torch.set_num_threads(1)  # the binary-point sum has a fixed order: the same bits
        one = _grads(x, p, 1 if per_channel else None, True, **kw)
        assert all(torch.equal(a, b) for a, b in zip(got[:3], one[:3], strict=True))
    finally:
        torch.set_num_threads(threads)


def test_missing_compiler_is_reported(monkeypatch, tmp_path):
    """Without a compiler: ``c`` raises one clear error; ``auto`` warns once and falls back
    to the torch path (same values); ``torch`` never builds."""
    monkeypatch.setattr(fake_quant_kernel, "_STATE", {})
    monkeypatch.setenv("QFX_CACHE_DIR", str(tmp_path / "build"))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("QFX_FAKE_QUANT_KERNEL", "c")
    with pytest.raises(fake_quant_kernel.KernelBuildError, match="no-such-cc"):
        fake_quant_kernel.load_kernel()
    monkeypatch.setattr(fake_quant_kernel, "_STATE", {})
    monkeypatch.setenv("QFX_FAKE_QUANT_KERNEL", "auto")
    x, p = torch.randn(50), torch.tensor(-3.0)
    kw = dict(width=8, signed=True, rounding="RND", overflow="SAT")
    with pytest.warns(RuntimeWarning, match="torch path"):
        y = fake_quantize(x, p, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert torch.equal(fake_quantize(x, p, **kw), y)
    assert torch.equal(y, fake_quantize(x, p, _reference=True, **kw))
    monkeypatch.setenv("QFX_FAKE_QUANT_KERNEL", "torch")
    assert fake_quant_kernel.load_kernel() is None
    monkeypatch.setenv("QFX_FAKE_QUANT_KERNEL", "fast")
    with pytest.raises(ValueError, match="QFX_FAKE_QUANT_KERNEL"):
        fake_quant_kernel.load_kernel()


def _relu_chain(x, p1, p2, w1, w2, g, *, reference=False, stale=False):
    """x -> fake_quantize (signed, w1, 2**p1) -> relu -> unsigned w2 cast (2**p2): output and
    the gradients of x and both binary points; ``reference`` runs the unfused reference."""
    x = x.clone().requires_grad_(True)
    a, b = torch.tensor(p1, requires_grad=True), torch.tensor(p2, requires_grad=True)
    kw = dict(rounding="RND", overflow="SAT", _reference=reference)
    h = fake_quantize(x, a, width=w1, signed=True, **kw)
    if stale:
        h.mul_(1.0)  # an in-place change: the grid tag no longer vouches for the values
    if reference:
        y = fake_quantize(torch.relu(h), b, width=w2, signed=False, **kw)
    else:
        y = fake_quant.relu_fake_quantize(h, b, width=w2, signed=False, rounding="RND",
                                          overflow="SAT")
    y.backward(g)
    return y.detach(), x.grad, a.grad, b.grad, type(y.grad_fn).__name__


@pytest.mark.parametrize("p1,p2,w2,skipped", [
    (-5.0, -6.0, 8, True),    # ap_fixed<8,3> -> relu -> ap_ufixed<8,2>: the same grid, held
    (-5.0, -5.0, 8, True),    # the same step, range held
    (-5.0, -4.0, 8, False),   # a coarser step: real rounding
    (-5.0, -7.0, 8, False),   # finer but too narrow: 127 * 4 > 255 saturates
    (-5.2, -5.6, 8, True),    # binary points as rounded: -5 and -6
])
def test_relu_cast_skipped_only_when_identity(require_kernel, p1, p2, w2, skipped):
    """A relu'd cast whose grid and range hold the previous cast's values is skipped; the
    values and all gradients stay those of the unskipped kernel path (``==``) and of the
    reference (values, input gradient and the skipped cast's zero binary-point gradient)."""
    x = torch.randn(4, 3, 9, 9) * 3
    g = torch.linspace(-1.0, 1.5, x.numel()).reshape(x.shape)
    got = _relu_chain(x, p1, p2, 8, w2, g)
    plain = _relu_chain(x, p1, p2, 8, w2, g, stale=True)
    ref = _relu_chain(x, p1, p2, 8, w2, g, reference=True)
    assert (got[4] == "_ReluOnGridBackward") == skipped
    assert plain[4] == "_FakeQuantKernelBackward"
    for a, b in zip(got[:4], plain[:4], strict=True):
        assert torch.equal(a, b)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
    if skipped:
        assert got[3].item() == 0.0 == ref[3].item()


def test_relu_cast_skip_nonfinite_gradient(require_kernel):
    """An infinite upstream gradient makes the skipped cast's binary-point gradient NaN, as
    the reference's ``sum(grad * 0)``; NaN inputs are never vouched for (no skip)."""
    x = torch.randn(64) * 3
    g = torch.ones(64)
    g[5] = float("inf")
    got = _relu_chain(x, -5.0, -6.0, 8, 8, g)
    ref = _relu_chain(x, -5.0, -6.0, 8, 8, g, reference=True)
    assert got[4] == "_ReluOnGridBackward" and math.isnan(got[3].item())
    assert math.isnan(ref[3].item()) and torch.equal(got[1], ref[1])
    x[3] = float("nan")
    assert _relu_chain(x, -5.0, -6.0, 8, 8, torch.ones(64))[4] == "_FakeQuantKernelBackward"
