"""Binarized networks built from qfx layers (already quantized: train and freeze them as is).

* :func:`cnv_w1a1`: FINN's CNV topology for CIFAR-10 (3x32x32): conv 64, 64, max pool,
  128, 128, max pool, 256, 256 (3x3, no padding), fc 512, 512, then the classifier. Every
  hidden layer has {-1, +1} weights and activations (BatchNorm + sign, folded into one
  threshold per channel by ``qfx.freeze``). The first layer is fixed-point (8-bit input and
  weights) or a thermometer encoding followed by a binary conv; the last layer is a
  fixed-point linear layer on {-1, +1} inputs (sign flips and adds: no multiplier).
* :func:`digits_bnn`: a small BNN of the same style for scikit-learn's 1x8x8 digits.

Example:
    >>> import torch
    >>> cnv_w1a1()(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from qfx.nn.binary import QBinaryConv2d, QBinaryLinear, QSign, QThermometer
from qfx.nn.config import QConfig, current_config
from qfx.nn.io import QFlatten, QInput
from qfx.nn.linear import QConv2d, QLinear
from qfx.nn.norm import QBatchNorm1d, QBatchNorm2d
from qfx.nn.pooling import QMaxPool2d

__all__ = ["cnv_w1a1", "digits_bnn", "FIRST_LAYERS"]

FIRST_LAYERS = ("fixed", "thermometer")


def _first_layer(layers: OrderedDict, kind: str, in_channels: int, out_channels: int,
                 levels: int, high: float, padding: int, cfg: QConfig) -> None:
    if kind == "fixed":
        layers["conv1"] = QConv2d(in_channels, out_channels, 3, padding=padding, bias=False,
                                  config=cfg)
    elif kind == "thermometer":
        layers["thermo"] = QThermometer(levels, 0.0, high)
        layers["conv1"] = QBinaryConv2d(in_channels * levels, out_channels, 3, padding=padding,
                                        config=cfg)
    else:
        raise ValueError(f"first_layer must be one of {', '.join(FIRST_LAYERS)}, got {kind!r}")
    layers["bn1"] = QBatchNorm2d(out_channels, config=cfg)
    layers["sign1"] = QSign()


def _bn_sign(layers: OrderedDict, i: int, channels: int, cfg: QConfig, dims: int = 2) -> None:
    layers[f"bn{i}"] = (QBatchNorm2d if dims == 2 else QBatchNorm1d)(channels, config=cfg)
    layers[f"sign{i}"] = QSign()


def cnv_w1a1(num_classes: int = 10, in_channels: int = 3, first_layer: str = "fixed",
             thermometer_levels: int = 8, config: QConfig | None = None) -> nn.Sequential:
    """FINN's CNV-w1a1 (binary weights and activations, ~1.5M parameters) for 3x32x32 inputs.

    ``first_layer``: ``"fixed"`` (a fixed-point conv on the 8-bit unsigned input, inputs in
    [0, 1)) or ``"thermometer"`` (``thermometer_levels`` bits per input channel, then a
    binary conv). ``config`` sets the fixed-point formats (default: the current QConfig).

    Example:
        >>> net = cnv_w1a1(first_layer="thermometer", thermometer_levels=4)
        >>> net.conv1.in_channels, type(net.fc3).__name__
        (12, 'QLinear')
    """
    cfg = config or current_config()
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["qin"] = QInput(8, signed=False, config=cfg)
    _first_layer(layers, first_layer, in_channels, 64, thermometer_levels, 1.0, 0, cfg)
    spec = [(64, 64, True), (64, 128, False), (128, 128, True), (128, 256, False),
            (256, 256, False)]
    for i, (cin, cout, pool) in enumerate(spec, start=2):
        layers[f"conv{i}"] = QBinaryConv2d(cin, cout, 3, config=cfg)
        _bn_sign(layers, i, cout, cfg)
        if pool:
            layers[f"pool{i}"] = QMaxPool2d(2)
    layers["flatten"] = QFlatten()
    layers["fc1"] = QBinaryLinear(256, 512, config=cfg)
    _bn_sign(layers, 7, 512, cfg, dims=1)
    layers["fc2"] = QBinaryLinear(512, 512, config=cfg)
    _bn_sign(layers, 8, 512, cfg, dims=1)
    layers["fc3"] = QLinear(512, num_classes, config=cfg)
    return nn.Sequential(layers)


def digits_bnn(num_classes: int = 10, first_layer: str = "thermometer",
               thermometer_levels: int = 4, channels: tuple[int, int] = (32, 64),
               hidden: int = 128, config: QConfig | None = None) -> nn.Sequential:
    """A small BNN for 1x8x8 digits (pixels in [0, 0.5], see ``qfx.data.load_digits_split``):
    first layer (thermometer + binary conv, or fixed-point conv), binary conv, max pool 2,
    binary fc ``hidden``, fixed-point classifier; BatchNorm + sign after every hidden layer.

    Example:
        >>> import torch
        >>> digits_bnn()(torch.rand(4, 1, 8, 8) / 2).shape
        torch.Size([4, 10])
    """
    cfg = config or current_config()
    c1, c2 = channels
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["qin"] = QInput(8, signed=False, config=cfg)
    _first_layer(layers, first_layer, 1, c1, thermometer_levels, 0.5, 1, cfg)
    layers["conv2"] = QBinaryConv2d(c1, c2, 3, padding=1, config=cfg)
    _bn_sign(layers, 2, c2, cfg)
    layers["pool2"] = QMaxPool2d(2)
    layers["flatten"] = QFlatten()
    layers["fc1"] = QBinaryLinear(c2 * 16, hidden, config=cfg)
    _bn_sign(layers, 3, hidden, cfg, dims=1)
    layers["fc2"] = QLinear(hidden, num_classes, config=cfg)
    return nn.Sequential(layers)
