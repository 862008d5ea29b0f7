"""Binarized layers: {-1, +1} weights and activations, a thermometer input encoder.

* :class:`QSign` binarises activations: ``+1 if x >= 0 else -1`` (zero maps to +1), with the
  straight-through estimator clipped to ``|x| <= 1`` (BinaryNet). After a BatchNorm, ``freeze``
  folds BatchNorm + sign into one integer threshold per channel (IR op ``threshold``).
* :class:`QBinaryLinear` / :class:`QBinaryConv2d` take {-1, +1} inputs and binarise their
  weights the same way; without a scale their output is the exact integer dot product
  (``2 * popcount(xnor(x, w)) - n`` in hardware), with ``scale=True`` it is
  ``alpha_c * dot`` cast to a learned output format (``alpha_c`` a fixed-point constant per
  output channel). A padded input position counts as **-1** (a zero is not a binary value;
  in bits, padding is a 0 bit), in training, eval and the IR alike.
* :class:`QThermometer` (FracBNN-style input layer) turns each fixed-point input value into
  ``levels`` binary channels: channel ``c * levels + k`` is +1 where ``x_c >= threshold_k``.

The first layer of a BNN takes fixed-point input (a :class:`qfx.nn.QConv2d` on a
:class:`qfx.nn.QInput`) or thermometer bits; the last layer stays fixed-point (a
:class:`qfx.nn.QLinear` on {-1, +1} inputs, whose products are sign flips, not multiplies).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from qfx.nn import QBatchNorm1d, QInput, QLinear
    >>> net = nn.Sequential(QInput(8, signed=False), QThermometer(4), QBinaryLinear(16, 8),
    ...                     QBatchNorm1d(8), QSign(), QLinear(8, 3))
    >>> net(torch.rand(5, 4)).shape
    torch.Size([5, 3])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from qfx.fixed.fixed_type import FixedType
from qfx.fixed.kernels import exact_conv2d, exact_linear
from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config

__all__ = ["BINARY_TYPE", "binarize", "QSign", "QBinaryLinear", "QBinaryConv2d", "QThermometer"]

# Format of every {-1, +1} tensor in the IR (2 bits hold -1 and +1; hardware may use 1 bit:
# bit 1 <-> +1, bit 0 <-> -1).
BINARY_TYPE = FixedType(2, 2, True)


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def binarize(x: torch.Tensor) -> torch.Tensor:
    """``+1 if x >= 0 else -1`` with the clipped straight-through gradient ``1{|x| <= 1}``.

    Example:
        >>> binarize(torch.tensor([-0.5, 0.0, 2.0])).tolist()
        [-1.0, 1.0, 1.0]
    """
    return _SignSTE.apply(x)


def _check_binary(x: torch.Tensor, who: str) -> None:
    if bool(((x != 1) & (x != -1)).any()):
        raise ValueError(f"{who} takes {{-1, +1}} inputs (from QSign, QThermometer, a folded "
                         "BatchNorm + sign, or max pooling of those); got other values")


class QSign(QLayer):
    """Binary activation: ``+1 if x >= 0 else -1`` (STE clipped to ``|x| <= 1`` in training).

    Its output format is :data:`BINARY_TYPE`. Frozen, it becomes a ``threshold`` node (with
    the preceding BatchNorm folded in when that BatchNorm feeds only this sign).

    Example:
        >>> QSign().eval()(torch.tensor([-0.1, 0.0, 3.0])).tolist()
        [-1.0, 1.0, 1.0]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return binarize(x)
        x = x.double()
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @property
    def output_type(self) -> FixedType:
        return BINARY_TYPE


class _BinaryLayer(QLayer):
    """Shared part of the binary dense and conv layers: weights, optional scale, output."""

    weight: nn.Parameter
    fan_in: int

    def _init_scale(self, cfg: QConfig, out_channels: int, scale: bool,
                    scale_width: int | None, act_width: int | None) -> None:
        self.has_scale = bool(scale)
        if self.has_scale:
            with torch.no_grad():
                init = self.weight.detach().abs().reshape(out_channels, -1).mean(1)
            self.scale = nn.Parameter(init)
            self.scale_quantizer = cfg.scale_quantizer(scale_width)
            self.output_quantizer = cfg.act_quantizer(act_width)
        else:
            self.register_parameter("scale", None)
            self.scale_quantizer = None

    def binary_weight(self) -> torch.Tensor:
        """The {-1, +1} weights (straight-through in training, float64 in eval)."""
        w = self.weight if self.training else self.weight.detach().double()
        return binarize(w) if self.training else torch.where(w >= 0, 1.0, -1.0).to(w)

    def quantized_scale(self) -> torch.Tensor | None:
        """The per-output-channel fixed-point scale (None without ``scale=True``)."""
        if self.scale is None:
            return None
        self.scale_quantizer.ensure_initialized(self.scale)
        return self.scale_quantizer(self.scale)

    @property
    def output_type(self) -> FixedType:
        """The output format: the exact integer range [-fan_in, fan_in] without a scale."""
        if self.scale is None:
            return FixedType.for_raw_range(-self.fan_in, self.fan_in, 0)
        return self.output_quantizer.fixed_type

    def _finish(self, dot: torch.Tensor) -> torch.Tensor:
        if self.scale is None:
            return dot
        shape = (1, -1) + (1,) * (dot.dim() - 2)
        return self.output_quantizer(dot * self.quantized_scale().view(shape).to(dot.dtype))


class QBinaryLinear(_BinaryLayer):
    """Dense layer with {-1, +1} weights on {-1, +1} inputs (XNOR-popcount in hardware).

    ``scale=True`` adds a learned fixed-point scale per output (init: mean |w|) and an output
    format; without it the output is the exact integer dot product in ``[-in, in]``.

    Example:
        >>> layer = QBinaryLinear(8, 4).eval()
        >>> x = torch.ones(2, 8)
        >>> bool((layer(x).abs() <= 8).all()), layer.output_type.cpp()
        (True, 'ap_fixed<5,5>')
    """

    def __init__(self, in_features: int, out_features: int, *, scale: bool = False,
                 scale_width: int | None = None, act_width: int | None = None,
                 config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Linear(in_features, out_features, bias=False).weight
        self.fan_in = in_features
        self._init_scale(cfg, out_features, scale, scale_width, act_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.binary_weight()
        if self.training:
            return self._finish(F.linear(x, w))
        x = x.double()
        _check_binary(x, "QBinaryLinear")
        return self._finish(exact_linear(x, w, None))


class QBinaryConv2d(_BinaryLayer):
    """2-D convolution with {-1, +1} weights on {-1, +1} inputs; padding inserts **-1**.

    Example:
        >>> conv = QBinaryConv2d(4, 8, 3, padding=1).eval()
        >>> conv(torch.ones(1, 4, 5, 5)).shape, conv.fan_in
        (torch.Size([1, 8, 5, 5]), 36)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, *, scale: bool = False,
                 scale_width: int | None = None, act_width: int | None = None,
                 config: QConfig | None = None) -> None:
        super().__init__()
        if isinstance(padding, str):
            raise ValueError(f"QBinaryConv2d padding must be integers, got {padding!r}")
        cfg = config or current_config()
        ref = nn.Conv2d(in_channels, out_channels, kernel_size, stride, 0, dilation, groups,
                        bias=False)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation, self.groups = _pair(padding), _pair(dilation), groups
        self.weight = ref.weight
        self.fan_in = (in_channels // groups) * self.kernel_size[0] * self.kernel_size[1]
        self._init_scale(cfg, out_channels, scale, scale_width, act_width)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padding
        return F.pad(x, (pw, pw, ph, ph), value=-1.0) if ph or pw else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.binary_weight()
        if self.training:
            return self._finish(F.conv2d(self._pad(x), w, None, self.stride, 0, self.dilation,
                                         self.groups))
        x = x.double()
        _check_binary(x, "QBinaryConv2d")
        return self._finish(exact_conv2d(self._pad(x), w, None, self.stride, (0, 0),
                                         self.dilation, self.groups))


class QThermometer(QLayer):
    """Thermometer encoding of a fixed-point input into ``levels`` {-1, +1} channels per channel.

    Channel ``c * levels + k`` of the output is ``+1 if x_c >= thresholds[k] else -1``. The
    default thresholds are ``low + (high - low) * (k + 1/2) / levels``, so the number of +1
    bits is ``round((x - low) / (high - low) * levels)`` clamped to [0, levels]. Thresholds
    are float64 values used exactly (freeze turns them into integers on the input's grid).
    Inputs are (N, C, H, W) or (N, F); no gradient flows to the input.

    Example:
        >>> QThermometer(4)(torch.tensor([[0.0, 0.3, 0.99]])).tolist()
        [[-1.0, -1.0, -1.0, -1.0, 1.0, -1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]]
    """

    def __init__(self, levels: int, low: float = 0.0, high: float = 1.0, *,
                 thresholds: Sequence[float] | None = None) -> None:
        super().__init__()
        if thresholds is None:
            if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
                raise ValueError(f"QThermometer levels must be an integer >= 1, got {levels!r}")
            if not high > low:
                raise ValueError(f"QThermometer needs high > low, got {low}, {high}")
            thresholds = [low + (high - low) * (k + 0.5) / levels for k in range(levels)]
        values = [float(t) for t in thresholds]
        if len(values) != levels or any(not torch.isfinite(torch.tensor(t)) for t in values):
            raise ValueError(f"QThermometer needs {levels} finite thresholds, got {thresholds!r}")
        if any(b <= a for a, b in zip(values, values[1:], strict=False)):
            raise ValueError(f"QThermometer thresholds must increase, got {values}")
        self.levels = levels
        self.register_buffer("thresholds", torch.tensor(values, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach() if self.training else x.double()
        t = self.thresholds.to(x.device, torch.float64)
        bits = x.unsqueeze(2).to(torch.float64) >= t.view((1, 1, -1) + (1,) * (x.dim() - 2))
        out = torch.where(bits, 1.0, -1.0).to(x.dtype)
        return out.flatten(1, 2)

    @property
    def output_type(self) -> FixedType:
        return BINARY_TYPE
