"""The training statistics of qfx BatchNorm (``_batch_var_mean``): the values and gradients
of ``torch.var_mean`` (float statistics, so equal up to float32 rounding: the two compute the
same sums in a different order), for BatchNorm1d/2d shapes."""

from __future__ import annotations

import pytest
import torch

from qfx.nn.norm import QBatchNorm2d, _batch_var_mean


@pytest.mark.parametrize("shape", [(64, 5), (8, 5, 7), (16, 5, 9, 11)])
def test_batch_var_mean_matches_torch(shape):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 10  # a large mean
    dims = [0] + list(range(2, len(shape)))
    gv, gm = torch.randn(shape[1], generator=g), torch.randn(shape[1], generator=g)
    out = []
    for fn in (_batch_var_mean, lambda x, d: torch.var_mean(x, d, unbiased=False)):
        x = x0.clone().requires_grad_(True)
        var, mean = fn(x, dims)
        ((var * gv).sum() + (mean * gm).sum()).backward()
        out.append((var.detach(), mean.detach(), x.grad))
    for a, b in zip(*out, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_batchnorm_training_uses_batch_statistics():
    bn = QBatchNorm2d(3).train()
    x = torch.randn(4, 3, 5, 5) * 2 + 1
    bn(x)
    var, mean = torch.var_mean(x, [0, 2, 3], unbiased=False)
    torch.testing.assert_close(bn.running_mean, 0.1 * mean)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * var * 100 / 99)
