"""Fixed-point pooling: max pooling is exact as is; average pooling sums exactly, then scales
by a power-of-two shift or a fixed-point reciprocal with its own format."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

from qfx.fixed.kernels import exact_sum_pool2d
from qfx.fixed.quantizer import FixedQuantizer
from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config

__all__ = ["QMaxPool2d", "QAvgPool2d", "QGlobalAvgPool2d"]


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


class QAvgPool2d(QLayer):
    """Average pooling (no padding): exact window sum, times 2**-k or a fixed-point 1/area.

    Example:
        >>> pool = QAvgPool2d(3)
        >>> pool.recip_type.cpp()      # 1/9 as a 16-bit unsigned fixed-point constant
        'ap_ufixed<16,-3,AP_RND,AP_SAT>'
    """

    def __init__(self, kernel_size, stride=None, *, act_width: int | None = None,
                 recip_width: int | None = None, config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.output_quantizer = cfg.act_quantizer(act_width)
        self._set_area(self.kernel_size[0] * self.kernel_size[1], recip_width or
                       cfg.pool_recip_width)

    def _set_area(self, area: int, recip_width: int) -> None:
        self.area = area
        self.shift = area.bit_length() - 1 if area & (area - 1) == 0 else None
        self.recip_quantizer: FixedQuantizer | None = None
        if self.shift is None:
            # 1/area in [2**-k, 2**(1-k)): put the MSB of the format on its leading one
            int_bits = math.floor(math.log2(1.0 / area)) + 1
            self.recip_quantizer = FixedQuantizer(recip_width, False, "RND", "SAT",
                                                  int_bits=int_bits, learn_binary_point=False)

    @property
    def recip_type(self):
        """FixedType of the 1/area constant (None when the area is a power of two)."""
        return None if self.recip_quantizer is None else self.recip_quantizer.fixed_type

    def _scale(self, s: torch.Tensor) -> torch.Tensor:
        if self.shift is not None:
            return s * 2.0 ** -self.shift  # exact
        recip = torch.tensor(1.0 / self.area, dtype=s.dtype, device=s.device)
        return s * self.recip_quantizer(recip).to(s.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        if self.training:
            s = F.avg_pool2d(x, self.kernel_size, self.stride, divisor_override=1)
        else:
            s = exact_sum_pool2d(x, self.kernel_size, self.stride)
        return self.output_quantizer(self._scale(s))


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
