"""Float reference models (plain torch.nn) for qfx to convert to fixed point."""

from __future__ import annotations

import torch
from torch import nn

from qfx.zoo.blocks import BasicBlock, Concat, conv_bn_relu

__all__ = ["DSCNN", "DigitsCNN", "DigitsMLPSoftmax", "FCAutoencoder", "MobileNetV1", "ResNet",
           "UNet", "digits_cnn", "digits_mlp_softmax", "ds_cnn", "fc_autoencoder",
           "mobilenet_v1_025", "resnet8", "resnet20", "unet", "CancerMLP", "cancer_mlp"]


class DigitsCNN(nn.Module):
    """Small CNN for 1x8x8 digits: 2 x (conv3x3 BN ReLU), maxpool 2, flatten, linear.

    Example:
        >>> DigitsCNN()(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10, channels: tuple[int, int] = (8, 16),
                 in_channels: int = 1, input_size: int = 8) -> None:
        super().__init__()
        c1, c2 = channels
        if input_size % 2:
            raise ValueError(f"input_size must be even (maxpool 2), got {input_size}")
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, c1), conv_bn_relu(c1, c2), nn.MaxPool2d(2)
        )
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c2 * (input_size // 2) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.features(x)))


class ResNet(nn.Module):
    """CIFAR-style ResNet: conv stem, stages of ``BasicBlock``s, global average pool, linear.

    ``stages`` lists (channels, blocks, first stride) per stage.

    Example:
        >>> ResNet(((16, 1, 1), (32, 1, 2)))(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """

    def __init__(self, stages: tuple[tuple[int, int, int], ...], num_classes: int = 10,
                 in_channels: int = 3, stem_channels: int | None = None,
                 input_size: int = 32) -> None:
        super().__init__()
        if not stages:
            raise ValueError("a ResNet needs at least one stage")
        cin = stem_channels or stages[0][0]
        self.stem = conv_bn_relu(in_channels, cin)
        layers: list[nn.Module] = []
        size = input_size
        for cout, blocks, stride in stages:
            for b in range(blocks):
                layers.append(BasicBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
            size = (size - 1) // stride + 1
        self.layers = nn.Sequential(*layers)
        # A fixed AvgPool2d over the whole map: a plain sum + power-of-two scale when the map
        # side is a power of two (8x8 for 32x32 inputs), easy to make exact in hardware.
        self.pool = nn.AvgPool2d(size)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.layers(self.stem(x)))))


def digits_cnn(num_classes: int = 10, channels: tuple[int, int] = (8, 16)) -> DigitsCNN:
    """The digits CNN (input 1x8x8): ~1.2k conv + 2.6k linear parameters.

    Example:
        >>> digits_cnn()(torch.zeros(1, 1, 8, 8)).shape
        torch.Size([1, 10])
    """
    return DigitsCNN(num_classes=num_classes, channels=tuple(channels))


def resnet8(num_classes: int = 10) -> ResNet:
    """MLPerf-Tiny style ResNet-8 for 3x32x32 (stages 16/32/64, strides 1/2/2), ~78k params.

    Example:
        >>> resnet8()(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """
    return ResNet(((16, 1, 1), (32, 1, 2), (64, 1, 2)), num_classes=num_classes)


def resnet20(num_classes: int = 10) -> ResNet:
    """CIFAR ResNet-20 (He et al. 2016): 3 stages x 3 basic blocks, 16/32/64, option-B
    1x1 conv shortcuts, ~0.27M params.

    Example:
        >>> resnet20()(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """
    return ResNet(((16, 3, 1), (32, 3, 2), (64, 3, 2)), num_classes=num_classes)


# ---------------------------------------------------------------------- U-Net (ops-graph)
class UNet(nn.Module):
    """A small U-Net for segmentation maps: a 2-level encoder (conv-BN-ReLU, max pool 2), a
    bottleneck, and a decoder that upsamples (nearest, x2), concatenates the encoder's skip
    tensor on the channel axis and convolves; a 1x1 conv gives ``num_classes`` score maps of
    the input's size (``input_size`` divisible by 4).

    Example:
        >>> UNet()(torch.zeros(2, 1, 16, 16)).shape
        torch.Size([2, 2, 16, 16])
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 1, base: int = 4,
                 input_size: int = 16) -> None:
        super().__init__()
        if input_size % 4:
            raise ValueError(f"input_size must be divisible by 4 (two 2x2 poolings), got "
                             f"{input_size}")
        c1, c2, c3 = base, 2 * base, 4 * base
        self.enc1 = conv_bn_relu(in_channels, c1)
        self.enc2 = conv_bn_relu(c1, c2)
        self.mid = conv_bn_relu(c2, c3)
        self.dec2 = conv_bn_relu(c3 + c2, c2)
        self.dec1 = conv_bn_relu(c2 + c1, c1)
        self.pool1, self.pool2 = nn.MaxPool2d(2), nn.MaxPool2d(2)
        self.up2, self.up1 = nn.Upsample(scale_factor=2), nn.Upsample(scale_factor=2)
        self.cat2, self.cat1 = Concat(), Concat()
        self.head = nn.Conv2d(c1, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool1(e1))
        m = self.mid(self.pool2(e2))
        d2 = self.dec2(self.cat2(self.up2(m), e2))
        d1 = self.dec1(self.cat1(self.up1(d2), e1))
        return self.head(d1)


def unet(num_classes: int = 2, in_channels: int = 1, base: int = 4) -> UNet:
    """The small U-Net (input 1x16x16, 2 levels, concat + nearest upsampling), ~3k parameters.

    Example:
        >>> unet()(torch.zeros(1, 1, 16, 16)).shape
        torch.Size([1, 2, 16, 16])
    """
    return UNet(num_classes=num_classes, in_channels=in_channels, base=base)


# ---------------------------------------------------------------------- ops-window: MLPerf Tiny
def _dw_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 (padding 1) -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
        nn.ReLU(),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
    )


class DSCNN(nn.Module):
    """MLPerf Tiny keyword spotting DS-CNN for a 1x49x10 MFCC input: conv 10x4 stride 2
    (padding (5, 1): 25x5, where TensorFlow's 'same' pads one row fewer at the top) -> BN ->
    ReLU, ``blocks`` depthwise-separable blocks (3x3 depthwise, 1x1 pointwise, BN, ReLU),
    global average pooling (25x5: a fixed-point 1/125), linear to 12 classes.

    Example:
        >>> DSCNN()(torch.zeros(2, 1, 49, 10)).shape
        torch.Size([2, 12])
    """

    def __init__(self, num_classes: int = 12, channels: int = 64, blocks: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, (10, 4), 2, (5, 1), bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU())
        self.blocks = nn.Sequential(*[_dw_separable(channels, channels, 1)
                                      for _ in range(blocks)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.blocks(self.stem(x)))))


#: MobileNetV1's depthwise-separable blocks: (output channels at width 1.0, stride)
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                       (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class MobileNetV1(nn.Module):
    """MobileNetV1 (Howard et al. 2017) at width ``alpha``: conv 3x3 stride 2 -> BN -> ReLU,
    13 depthwise-separable blocks (``MOBILENET_V1_BLOCKS``, the first ``depth`` of them), global
    average pooling, linear. MLPerf Tiny's visual wake words model is ``alpha=0.25`` at 96x96
    with 2 classes.

    Example:
        >>> MobileNetV1(0.25).eval()(torch.zeros(1, 3, 96, 96)).shape
        torch.Size([1, 2])
    """

    def __init__(self, alpha: float = 0.25, num_classes: int = 2, in_channels: int = 3,
                 depth: int = 13) -> None:
        super().__init__()
        if not 1 <= depth <= len(MOBILENET_V1_BLOCKS):
            raise ValueError(f"depth must be 1..{len(MOBILENET_V1_BLOCKS)}, got {depth}")
        width = [max(8, int(c * alpha)) for c in (32, *(c for c, _ in MOBILENET_V1_BLOCKS))]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width[0], 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(width[0]), nn.ReLU())
        self.blocks = nn.Sequential(*[_dw_separable(width[i], width[i + 1], stride)
                                      for i, (_, stride) in
                                      enumerate(MOBILENET_V1_BLOCKS[:depth])])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(width[depth], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.blocks(self.stem(x)))))


def ds_cnn(num_classes: int = 12, channels: int = 64, blocks: int = 4) -> DSCNN:
    """MLPerf Tiny DS-CNN (keyword spotting, input 1x49x10, 12 classes), ~23k parameters at
    64 channels; ``channels``/``blocks`` make smaller variants.

    Example:
        >>> ds_cnn(channels=8, blocks=1)(torch.zeros(1, 1, 49, 10)).shape
        torch.Size([1, 12])
    """
    return DSCNN(num_classes, channels, blocks)


def mobilenet_v1_025(num_classes: int = 2, depth: int = 13) -> MobileNetV1:
    """MobileNetV1-0.25 (visual wake words, MLPerf Tiny; input 3x96x96, or any size that 32
    divides, e.g. the 3x32x32 small-input variant), ~0.2M parameters.

    Example:
        >>> mobilenet_v1_025().eval()(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 2])
    """
    return MobileNetV1(0.25, num_classes, depth=depth)


# ---- a classifier with a softmax output (table activations: exp and 1/sum ROMs)
class DigitsMLPSoftmax(nn.Module):
    """MLP for 1x8x8 digits that outputs class probabilities: flatten, linear, ReLU, linear,
    softmax (qfx.quantize_model makes the softmax a QSoftmax: exp table, exact sum, reciprocal
    table). Its outputs are probabilities: train it on ``log`` of them (NLL), or train the
    logits and append the softmax.

    Example:
        >>> p = DigitsMLPSoftmax()(torch.zeros(2, 1, 8, 8))
        >>> p.shape, bool(torch.allclose(p.sum(1), torch.ones(2)))
        (torch.Size([2, 10]), True)
    """

    def __init__(self, num_classes: int = 10, hidden: int = 32, input_size: int = 8) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(input_size * input_size, hidden)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden, num_classes)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.softmax(self.fc2(self.relu(self.fc1(self.flatten(x)))))


def digits_mlp_softmax(num_classes: int = 10, hidden: int = 32) -> DigitsMLPSoftmax:
    """The digits MLP with a softmax output (input 1x8x8).

    Example:
        >>> digits_mlp_softmax().fc2.out_features
        10
    """
    return DigitsMLPSoftmax(num_classes=num_classes, hidden=hidden)


# ---- MLPerf Tiny anomaly detection: the fully-connected autoencoder (ToyADMOS / MIMII)
class FCAutoencoder(nn.Module):
    """MLPerf Tiny's anomaly-detection autoencoder: ``inputs`` (5 frames x 128 log-mel bins =
    640) -> ``depth`` x [linear ``hidden``, BatchNorm, ReLU] -> linear ``bottleneck``, BatchNorm,
    ReLU -> ``depth`` x [linear ``hidden``, BatchNorm, ReLU] -> linear ``inputs``. Its output is
    the reconstruction; the anomaly score is the reconstruction error (a regression model, no
    classes)."""

    def __init__(self, inputs: int = 640, hidden: int = 128, bottleneck: int = 8,
                 depth: int = 4) -> None:
        super().__init__()

        def block(n_in: int, n_out: int) -> list[nn.Module]:
            return [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU()]

        widths = [inputs] + [hidden] * depth + [bottleneck] + [hidden] * depth
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += block(a, b)
        layers.append(nn.Linear(hidden, inputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def fc_autoencoder(inputs: int = 640, hidden: int = 128, bottleneck: int = 8,
                   depth: int = 4) -> FCAutoencoder:
    """MLPerf Tiny's fully-connected autoencoder (anomaly detection, 640 inputs, ~0.27M
    parameters); ``hidden``/``depth`` make smaller variants.

    Example:
        >>> fc_autoencoder().eval()(torch.zeros(2, 640)).shape
        torch.Size([2, 640])
        >>> sum(p.numel() for p in fc_autoencoder().parameters())
        267928
    """
    return FCAutoencoder(inputs, hidden, bottleneck, depth)


# ---- issue #16: an hls4ml-style MLP for tabular data (breast cancer, 30 features, 2 classes)
class CancerMLP(nn.Module):
    """hls4ml-style MLP for the 30 standardised breast-cancer features: per hidden width a
    linear layer (no bias: the BatchNorm's shift is one), BatchNorm and ReLU, then a linear
    layer to ``num_classes`` logits.

    Example:
        >>> CancerMLP().eval()(torch.zeros(2, 30)).shape
        torch.Size([2, 2])
    """

    def __init__(self, inputs: int = 30, hidden: tuple[int, ...] = (32, 16),
                 num_classes: int = 2) -> None:
        super().__init__()
        dims = (inputs, *hidden)
        layers: list[nn.Module] = []
        for n_in, n_out in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(n_in, n_out, bias=False), nn.BatchNorm1d(n_out), nn.ReLU()]
        layers.append(nn.Linear(dims[-1], num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def cancer_mlp(inputs: int = 30, hidden: tuple[int, ...] = (32, 16),
               num_classes: int = 2) -> CancerMLP:
    """The breast-cancer MLP 30-32-16-2 (Linear, BatchNorm, ReLU per hidden layer; 1,504
    weights).

    Example:
        >>> m = cancer_mlp()
        >>> sum(l.weight.numel() for l in m.modules() if isinstance(l, torch.nn.Linear))
        1504
    """
    return CancerMLP(inputs, tuple(hidden), num_classes)
