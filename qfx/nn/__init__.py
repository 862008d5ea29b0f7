"""Trainable fixed-point layers and the torch.nn converter (`qfx.freeze` lives in qfx.frontends)."""

from qfx.nn.activation import QHardSigmoid, QHardSwish, QHardTanh, QLeakyReLU, QReLU
from qfx.nn.base import QLayer
from qfx.nn.binary import QBinaryConv2d, QBinaryLinear, QSign, QThermometer
from qfx.nn.config import QConfig, config, current_config
from qfx.nn.convert import quantize_model
from qfx.nn.io import QFlatten, QInput
from qfx.nn.linear import QConv1d, QConv2d, QLinear
from qfx.nn.merge import QAdd, QConcat, QMul
from qfx.nn.norm import QBatchNorm1d, QBatchNorm2d, sync_batchnorm
from qfx.nn.pooling import QAvgPool2d, QGlobalAvgPool2d, QGlobalMaxPool2d, QMaxPool2d
from qfx.nn.spatial import QPad, QUpsample
from qfx.nn.table import QExp, QSigmoid, QSoftmax, QTanh

__all__ = [
    "QAdd", "QAvgPool2d", "QBatchNorm1d", "QBatchNorm2d", "QConfig", "QConv2d", "QFlatten",
    "QGlobalAvgPool2d", "QHardTanh", "QInput", "QLayer", "QLinear", "QMaxPool2d", "QReLU",
    "config", "current_config", "quantize_model", "sync_batchnorm",
    "QBinaryConv2d", "QBinaryLinear", "QSign", "QThermometer",
    "QConcat", "QMul", "QPad", "QUpsample",
    # ops-window
    "QConv1d", "QGlobalMaxPool2d", "QHardSigmoid", "QHardSwish", "QLeakyReLU",
    "QExp", "QSigmoid", "QSoftmax", "QTanh",
]
