"""Fixed-point pooling: max pooling is exact as is; average pooling sums exactly, then scales
by a power-of-two shift or a fixed-point reciprocal with its own format (with padding,
``ceil_mode`` or ``count_include_pad=False`` the divisor depends on the window's position:
then one fixed-point reciprocal per output position, :func:`avgpool_divisors`)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

from qfx.fixed.kernels import exact_sum_pool2d
from qfx.fixed.quantizer import FixedQuantizer
from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config

__all__ = ["QMaxPool2d", "QAvgPool2d", "QGlobalAvgPool2d", "QGlobalMaxPool2d", "avgpool_divisors",
           "pool_output_size"]


class QMaxPool2d(QLayer):
    """Max pooling; the output keeps the input's format (a max never rounds).

    Example:
        >>> QMaxPool2d(2)(torch.randn(1, 2, 4, 4)).shape
        torch.Size([1, 2, 2, 2])
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding, self.dilation, self.ceil_mode = _pair(padding), _pair(dilation), ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(self._prepare(x), self.kernel_size, self.stride, self.padding,
                            self.dilation, self.ceil_mode)

    @property
    def output_type(self):
        raise ValueError("QMaxPool2d keeps its input's format")


def pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length along one axis (in ceil mode the last window must start
    inside the input or its left padding).

    Example:
        >>> pool_output_size(5, 2, 2, 0, True), pool_output_size(5, 2, 2, 0, False)
        (3, 2)
    """
    span = size + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def avgpool_divisors(in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
                     padding: tuple[int, int] = (0, 0), ceil_mode: bool = False,
                     count_include_pad: bool = True, divisor_override: int | None = None
                     ) -> np.ndarray:
    """PyTorch's divisor of every output position of ``avg_pool2d`` (int64 ``[OH, OW]``): the
    window clipped to the padded input (``count_include_pad``) or to the input itself, or
    ``divisor_override``.

    Example:
        >>> avgpool_divisors((3, 3), (2, 2), (2, 2), (1, 1), count_include_pad=False).tolist()
        [[1, 2], [2, 4]]
    """
    per_axis = []
    for i in range(2):
        n, k, s, p = in_hw[i], kernel[i], stride[i], padding[i]
        o = np.arange(pool_output_size(n, k, s, p, ceil_mode))
        start = o * s - p
        end = np.minimum(start + k, n + p)
        if count_include_pad:
            per_axis.append(end - start)
        else:
            per_axis.append(np.minimum(end, n) - np.maximum(start, 0))
    d = np.outer(per_axis[0], per_axis[1]).astype(np.int64)
    if divisor_override:
        d[:] = int(divisor_override)
    return d


class QAvgPool2d(QLayer):
    """Average pooling as PyTorch defines it (``padding``, ``ceil_mode``, ``count_include_pad``,
    ``divisor_override``): the exact window sum (padding adds zeros), times 2**-k or a
    fixed-point reciprocal of the divisor. Where the divisor is the same at every position it is
    one constant (a shift when it is a power of two); otherwise each output position has its own
    reciprocal, all in one format (``recip_type``), set for the input size first seen.

    Example:
        >>> pool = QAvgPool2d(3)
        >>> pool.recip_type.cpp()      # 1/9 as a 16-bit unsigned fixed-point constant
        'ap_ufixed<16,-3,AP_RND,AP_SAT>'
        >>> QAvgPool2d(2, padding=1, count_include_pad=False)(torch.ones(1, 1, 3, 3)).shape
        torch.Size([1, 1, 2, 2])
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None, *,
                 act_width: int | None = None, recip_width: int | None = None,
                 config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding = _pair(padding)
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.divisor_override = int(divisor_override) if divisor_override else None
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            raise ValueError(f"QAvgPool2d: padding {self.padding} must be at most half the "
                             f"kernel {self.kernel_size} (as in PyTorch)")
        self.output_quantizer = cfg.act_quantizer(act_width)
        self._recip_width = recip_width or cfg.pool_recip_width
        self.divisors: np.ndarray | None = None  # [OH, OW] when they differ by position
        self.recip_map: np.ndarray | None = None  # raw reciprocals, recip_type
        self._map_for: tuple[int, int] | None = None
        area = self.divisor_override or self.kernel_size[0] * self.kernel_size[1]
        self._set_area(area, self._recip_width)

    @property
    def uniform(self) -> bool:
        """True when every window has the same divisor (no padding or ceil effects)."""
        return (self.divisor_override is not None
                or (self.padding == (0, 0) and not self.ceil_mode)
                or (self.count_include_pad and not self.ceil_mode))

    def _set_area(self, area: int, recip_width: int) -> None:
        self.area = area
        self.shift = area.bit_length() - 1 if area & (area - 1) == 0 else None
        self.recip_quantizer: FixedQuantizer | None = None
        if self.shift is None:
            self.recip_quantizer = _recip_quantizer(recip_width, area)

    def _set_map(self, hw: tuple[int, int]) -> None:
        """Per-position divisors for input size ``hw`` (non-uniform pools only)."""
        if self._map_for == hw:
            return
        d = avgpool_divisors(hw, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad, self.divisor_override)
        if int(d.min()) == int(d.max()):
            self._set_area(int(d.min()), self._recip_width)
            self.divisors = self.recip_map = None
        else:
            self.shift = None
            self.recip_quantizer = _recip_quantizer(self._recip_width, int(d.min()))
            self.divisors = d
            self.recip_map = self.recip_quantizer.to_int(
                torch.from_numpy(1.0 / d.astype(np.float64))).numpy()
        self._map_for = hw

    @property
    def recip_type(self):
        """FixedType of the 1/divisor constant(s) (None when the divisor is a power of two)."""
        return None if self.recip_quantizer is None else self.recip_quantizer.fixed_type

    def _scale(self, s: torch.Tensor) -> torch.Tensor:
        if self.recip_map is not None:
            t = self.recip_type
            r = torch.ldexp(torch.from_numpy(self.recip_map).double(),
                            torch.tensor(-float(t.frac_bits), dtype=torch.float64))
            return s * r.to(device=s.device, dtype=s.dtype)  # exact: raw * 2**-F
        if self.shift is not None:
            return s * 2.0 ** -self.shift  # exact
        recip = torch.tensor(1.0 / self.area, dtype=s.dtype, device=s.device)
        return s * self.recip_quantizer(recip).to(s.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        if not self.uniform:
            self._set_map(tuple(x.shape[-2:]))
        if self.training:
            s = F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             True, divisor_override=1)
        elif self.padding == (0, 0) and not self.ceil_mode:
            s = exact_sum_pool2d(x, self.kernel_size, self.stride)
        else:  # the sum over the window's cells inside the input: exact in float64
            s = F.avg_pool2d(x.double(), self.kernel_size, self.stride, self.padding,
                             self.ceil_mode, True, divisor_override=1)
        return self.output_quantizer(self._scale(s))


def _recip_quantizer(width: int, smallest_divisor: int) -> FixedQuantizer:
    """An unsigned constant format whose MSB is the leading one of 1/smallest_divisor."""
    int_bits = math.floor(math.log2(1.0 / smallest_divisor)) + 1
    return FixedQuantizer(width, False, "RND", "SAT", int_bits=int_bits,
                          learn_binary_point=False)


class QGlobalAvgPool2d(QAvgPool2d):
    """Global average pooling to (N, C, 1, 1); the window is fixed by the first input seen
    (or ``input_size``), which freezing records.

    Example:
        >>> QGlobalAvgPool2d(input_size=8)(torch.randn(2, 4, 8, 8)).shape
        torch.Size([2, 4, 1, 1])
    """

    def __init__(self, input_size=None, *, act_width: int | None = None,
                 recip_width: int | None = None, config: QConfig | None = None) -> None:
        size = _pair(input_size) if input_size is not None else (1, 1)
        super().__init__(size, size, act_width=act_width, recip_width=recip_width,
                         config=config)
        self._recip_width = recip_width or (config or current_config()).pool_recip_width
        self._sized = input_size is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        if not self._sized or size != self.kernel_size:
            if self._sized:
                raise ValueError(f"QGlobalAvgPool2d was sized for {self.kernel_size}, "
                                 f"got spatial size {size}")
            self.kernel_size = self.stride = size
            self._set_area(size[0] * size[1], self._recip_width)
            self._sized = True
        return super().forward(x)


class QGlobalMaxPool2d(QMaxPool2d):
    """Global max pooling to (N, C, 1, 1) (``nn.AdaptiveMaxPool2d(1)``, ``x.amax((2, 3))``,
    ONNX ``GlobalMaxPool``): freezes to the IR op ``maxpool2d`` with the window the whole input
    (kernel = stride = (H, W)), fixed by ``input_size`` or the first input seen. Keeps the
    input's format.

    Example:
        >>> QGlobalMaxPool2d()(torch.randn(2, 4, 5, 3)).shape
        torch.Size([2, 4, 1, 1])
    """

    def __init__(self, input_size=None) -> None:
        size = _pair(input_size) if input_size is not None else (1, 1)
        super().__init__(size, size)
        self._sized = input_size is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        if size != self.kernel_size:
            if self._sized:
                raise ValueError(f"QGlobalMaxPool2d was sized for {self.kernel_size}, got "
                                 f"spatial size {size}")
            self.kernel_size = self.stride = size
            self._sized = True
        return super().forward(x)
