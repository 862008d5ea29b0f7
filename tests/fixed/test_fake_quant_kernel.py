"""The one-pass C kernel of fake quantisation (``_FakeQuantKernel``) against the unfused
reference (``_FakeQuantReference``): the same forward values and the same input and
binary-point gradients, ``==``, for every rounding x overflow mode it handles, float32 and
float64, per tensor and per channel, on grid values, ties, out-of-range values, huge and
subnormal values, infinities, NaN and signed zeros, with one and several threads. The kernel is
required here (``QFX_FAKE_QUANT_KERNEL=c``): a missing compiler fails these tests loudly."""

from __future__ import annotations

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
    (y * g).sum().backward()
    return y.detach(), x.grad, p.grad


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
                    for a, b in zip(got, ref, strict=True):
                        assert _same(a, b), (overflow, signed, log2_lsb, cd)
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
        assert all(torch.equal(a, b) for a, b in zip(got, ref, strict=True))
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
