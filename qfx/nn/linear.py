"""Fixed-point dense and convolution layers with learned formats for weights, bias, output."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from qfx.fixed.kernels import exact_conv2d, exact_linear
from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config

__all__ = ["QLinear", "QConv1d", "QConv2d"]


class _WeightedLayer(QLayer):
    def _init_quantizers(self, cfg: QConfig, out_channels: int, bias: bool,
                         weight_width: int | None, act_width: int | None,
                         bias_width: int | None, quantize_output: bool) -> None:
        self.weight_quantizer = cfg.weight_quantizer(out_channels, weight_width,
                                                     shape=tuple(self.weight.shape))
        self.bias_quantizer = cfg.constant_quantizer(bias_width or cfg.bias_width,
                                                     (out_channels,)) if bias else None
        # Without an output cast the layer hands on its exact accumulator (e.g. to a BatchNorm
        # that follows): one lossy step fewer, and its format is sized at freeze time.
        self.output_quantizer = cfg.act_quantizer(act_width) if quantize_output else None

    def _adopt_conv(self, ref: nn.Module, config: QConfig | None, weight_width: int | None,
                    act_width: int | None, bias_width: int | None, quantize_output: bool
                    ) -> None:
        """Take a float convolution's parameters and sizes, and make the quantizers."""
        self.in_channels, self.out_channels = ref.in_channels, ref.out_channels
        self.groups = ref.groups
        self.weight, self.bias = ref.weight, ref.bias
        self._init_quantizers(config or current_config(), ref.out_channels, ref.bias is not None,
                              weight_width, act_width, bias_width, quantize_output)

    def _output(self, acc: torch.Tensor) -> torch.Tensor:
        return acc if self.output_quantizer is None else self.output_quantizer(acc)

    def quantized_weight(self) -> torch.Tensor:
        self.weight_quantizer.ensure_initialized(self.weight)
        return self.weight_quantizer(self.weight)

    def quantized_bias(self) -> torch.Tensor | None:
        if self.bias is None:
            return None
        self.bias_quantizer.ensure_initialized(self.bias)
        return self.bias_quantizer(self.bias)


class QLinear(_WeightedLayer):
    """``nn.Linear`` whose weight, bias and output are fixed-point with learned binary points.

    Example:
        >>> layer = QLinear(16, 4)
        >>> y = layer(torch.randn(8, 16))          # training: float fake-quant
        >>> layer.output_type.cpp()
        'ap_fixed<8,2,AP_RND,AP_SAT>'
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 weight_width: int | None = None, act_width: int | None = None,
                 bias_width: int | None = None, quantize_output: bool = True,
                 config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        ref = nn.Linear(in_features, out_features, bias)
        self.in_features, self.out_features = in_features, out_features
        self.weight = ref.weight
        self.bias = ref.bias
        self._init_quantizers(cfg, out_features, bias, weight_width, act_width, bias_width,
                              quantize_output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        w, b = self.quantized_weight(), self.quantized_bias()
        acc = exact_linear(x, w, b) if not self.training else F.linear(x, w, b)
        return self._output(acc)


class QConv2d(_WeightedLayer):
    """``nn.Conv2d`` (stride, padding, dilation, groups incl. depthwise) in fixed point.

    Example:
        >>> conv = QConv2d(3, 8, 3, padding=1, groups=1)
        >>> conv(torch.randn(2, 3, 8, 8)).shape
        torch.Size([2, 8, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, *,
                 weight_width: int | None = None, act_width: int | None = None,
                 bias_width: int | None = None, quantize_output: bool = True,
                 config: QConfig | None = None) -> None:
        super().__init__()
        if isinstance(padding, str):
            raise ValueError(f"QConv2d padding must be integers, got {padding!r}")
        ref = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation,
                        groups, bias)
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        self._adopt_conv(ref, config, weight_width, act_width, bias_width, quantize_output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        w, b = self.quantized_weight(), self.quantized_bias()
        if self.training:
            acc = F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)
        else:
            acc = exact_conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)
        return self._output(acc)


class QConv1d(_WeightedLayer):
    """``nn.Conv1d`` (stride, padding, dilation, groups incl. depthwise) in fixed point, on
    ``(N, C, L)`` inputs; freezes to the IR op ``conv1d``.

    Example:
        >>> conv = QConv1d(4, 6, 3, padding=1, groups=2)
        >>> conv(torch.randn(2, 4, 10)).shape
        torch.Size([2, 6, 10])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = True, *,
                 weight_width: int | None = None, act_width: int | None = None,
                 bias_width: int | None = None, quantize_output: bool = True,
                 config: QConfig | None = None) -> None:
        super().__init__()
        if isinstance(padding, str):
            raise ValueError(f"QConv1d padding must be an integer, got {padding!r}")
        ref = nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding, dilation,
                        groups, bias)
        self.kernel_size, self.stride = ref.kernel_size[0], ref.stride[0]
        self.padding, self.dilation = ref.padding[0], ref.dilation[0]
        self._adopt_conv(ref, config, weight_width, act_width, bias_width, quantize_output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare(x)
        w, b = self.quantized_weight(), self.quantized_bias()
        if self.training:
            acc = F.conv1d(x, w, b, self.stride, self.padding, self.dilation, self.groups)
        else:  # the exact kernel, as a height-1 conv2d
            acc = exact_conv2d(x.unsqueeze(2), w.unsqueeze(2), b, (1, self.stride),
                               (0, self.padding), (1, self.dilation), self.groups).squeeze(2)
        return self._output(acc)
