"""Building blocks of the float zoo, made only of modules the qfx converter can swap.

Every operation that must become fixed-point in hardware is a module (never a bare ``+`` or a
reused module instance), so ``qfx.quantize_model`` can give each one its own quantizer.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Add", "BasicBlock", "Concat", "conv_bn_relu"]


class Add(nn.Module):
    """Residual addition as a module: ``Add()(a, b) == a + b``.

    Example:
        >>> Add()(torch.ones(2), torch.ones(2))
        tensor([2., 2.])
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Concat(nn.Module):
    """Channel concatenation as a module: ``Concat()(a, b) == torch.cat([a, b], dim=1)``
    (``qfx.quantize_model`` gives each call its own QConcat).

    Example:
        >>> Concat()(torch.ones(1, 2, 3, 3), torch.ones(1, 4, 3, 3)).shape
        torch.Size([1, 6, 3, 3])
    """

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


def conv_bn_relu(cin: int, cout: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (no bias, 'same' padding) -> BatchNorm -> ReLU.

    Example:
        >>> conv_bn_relu(3, 16)(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv+BN, a 1x1 conv+BN shortcut when the shape changes
    (option B), an ``Add`` and a final ReLU.

    Example:
        >>> BasicBlock(16, 32, stride=2)(torch.zeros(1, 16, 8, 8)).shape
        torch.Size([1, 32, 4, 4])
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout)
            )
        self.add = Add()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu2(self.add(out, identity))
