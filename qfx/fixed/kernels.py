"""Exact float64 kernels shared by the eval path of qfx layers and the frozen executor.

Inputs are fixed-point values held in float64. A product of two such values is exact when
the product of their mantissas has at most 53 bits, and a sum of values on a common grid is
exact while the result stays below 2**53 grid steps, in any order. `qfx.freeze` proves those
bounds for every layer (it refuses accumulators wider than 53 bits), so these plain float64
operations compute the same bits as the integer hardware.

Winograd/FFT convolution would break exactness; on CPU, torch runs float64 convolution as
im2col + GEMM or as direct loops (both exact), and elsewhere we do im2col + matmul ourselves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["FLOAT64_EXACT_BITS", "exact_linear", "exact_conv2d", "exact_sum_pool2d"]

FLOAT64_EXACT_BITS = 53


def exact_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``x @ w.T + b`` in float64."""
    return F.linear(x.double(), w.double(), None if b is None else b.double())


def exact_conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: tuple,
                 padding: tuple, dilation: tuple, groups: int) -> torch.Tensor:
    """2-D convolution in float64 by an exact algorithm (see the module docstring)."""
    x, w = x.double(), w.double()
    b = None if b is None else b.double()
    if x.device.type == "cpu":
        return F.conv2d(x, w, b, stride, padding, dilation, groups)
    n, _, h, wd = x.shape
    cout, cin_g, kh, kw = w.shape
    cols = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)
    oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cols = cols.view(n, groups, cin_g * kh * kw, oh * ow)
    wg = w.view(groups, cout // groups, cin_g * kh * kw)
    out = torch.einsum("gok,ngkl->ngol", wg, cols).reshape(n, cout, oh, ow)
    return out if b is None else out + b.view(1, -1, 1, 1)


def exact_sum_pool2d(x: torch.Tensor, kernel: tuple, stride: tuple) -> torch.Tensor:
    """Sum over each pooling window (no division), in float64."""
    return F.avg_pool2d(x.double(), kernel, stride, divisor_override=1)
