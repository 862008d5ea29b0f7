"""Model zoo: float models in plain torch.nn (Conv2d, BatchNorm2d, ReLU, pooling, Linear,
``Add``) for ``qfx.quantize_model``, and binarized networks built from qfx layers
(``cnv_w1a1``, FINN's CNV topology, and ``digits_bnn``); ``unet`` is a small segmentation
U-Net (nearest upsampling and channel concatenation); MLPerf Tiny's DS-CNN, MobileNetV1-0.25
and fully-connected autoencoder (``fc_autoencoder``) beside ResNet-8; ``cancer_mlp`` is an
hls4ml-style MLP for the 30 breast-cancer features.

Example:
    >>> from qfx.zoo import get_model
    >>> sum(p.numel() for p in get_model("resnet8").parameters()) > 70_000
    True
"""

from qfx.zoo.blocks import Add, BasicBlock, Concat, conv_bn_relu
from qfx.zoo.bnn import cnv_w1a1, digits_bnn
from qfx.zoo.models import (
    DSCNN,
    CancerMLP,
    DigitsCNN,
    DigitsMLPSoftmax,
    FCAutoencoder,
    MobileNetV1,
    ResNet,
    UNet,
    cancer_mlp,
    digits_cnn,
    digits_mlp_softmax,
    ds_cnn,
    fc_autoencoder,
    mobilenet_v1_025,
    resnet8,
    resnet20,
    unet,
)
from qfx.zoo.registry import MODELS, ModelSpec, get_model, model_names, model_spec

__all__ = [
    "Add", "BasicBlock", "conv_bn_relu", "DigitsCNN", "ResNet", "digits_cnn", "resnet8",
    "resnet20", "MODELS", "ModelSpec", "get_model", "model_names", "model_spec", "cnv_w1a1",
    "digits_bnn", "Concat", "UNet", "unet", "DigitsMLPSoftmax", "digits_mlp_softmax",
    "DSCNN", "ds_cnn", "MobileNetV1", "mobilenet_v1_025", "FCAutoencoder", "fc_autoencoder",
    "CancerMLP", "cancer_mlp",
]
