"""Float reference models (plain torch.nn) for qfx to convert to fixed point."""

from __future__ import annotations

import torch
from torch import nn

from qfx.zoo.blocks import BasicBlock, conv_bn_relu

__all__ = ["DigitsCNN", "DigitsMLPSoftmax", "ResNet", "digits_cnn", "digits_mlp_softmax",
           "resnet8", "resnet20"]


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
