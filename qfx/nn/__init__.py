"""Trainable fixed-point layers and the torch.nn converter (`qfx.freeze` lives in qfx.frontends)."""

from qfx.nn.activation import QHardTanh, QReLU
from qfx.nn.base import QLayer
from qfx.nn.binary import QBinaryConv2d, QBinaryLinear, QSign, QThermometer
from qfx.nn.config import QConfig, config, current_config
from qfx.nn.convert import quantize_model
from qfx.nn.io import QFlatten, QInput
from qfx.nn.linear import QConv2d, QLinear
from qfx.nn.merge import QAdd
from qfx.nn.norm import QBatchNorm1d, QBatchNorm2d, sync_batchnorm
from qfx.nn.pooling import QAvgPool2d, QGlobalAvgPool2d, QMaxPool2d
from qfx.nn.table import QExp, QSigmoid, QSoftmax, QTanh

__all__ = [
    "QAdd", "QAvgPool2d", "QBatchNorm1d", "QBatchNorm2d", "QConfig", "QConv2d", "QFlatten",
    "QGlobalAvgPool2d", "QHardTanh", "QInput", "QLayer", "QLinear", "QMaxPool2d", "QReLU",
    "config", "current_config", "quantize_model", "sync_batchnorm",
    "QBinaryConv2d", "QBinaryLinear", "QSign", "QThermometer",
    "QExp", "QSigmoid", "QSoftmax", "QTanh",
]
