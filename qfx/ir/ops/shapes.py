"""Output sizes of sliding-window ops along one axis (PyTorch's formulas): shape inference reads
them, and so do the backends that lay out windows."""

from __future__ import annotations

__all__ = ["avgpool2d_output_size", "conv2d_output_size", "maxpool2d_output_size"]


def conv2d_output_size(size: int, *, kernel: int, stride: int, padding: int,
                       dilation: int) -> int:
    """Output length of a convolution along one axis (PyTorch's formula).

    Example:
        >>> conv2d_output_size(8, kernel=3, stride=1, padding=2, dilation=2)
        8
    """
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def maxpool2d_output_size(size: int, *, kernel: int, stride: int, padding: int, dilation: int,
                          ceil_mode: bool) -> int:
    """Output length of max pooling along one axis, ``ceil_mode`` included (PyTorch's rule: in
    ceil mode the last window must start inside the input or its left padding).

    Example:
        >>> maxpool2d_output_size(5, kernel=2, stride=2, padding=0, dilation=1, ceil_mode=True)
        3
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
        return out
    return span // stride + 1


def avgpool2d_output_size(size: int, *, kernel: int, stride: int) -> int:
    """Output length of average pooling without padding, floor mode.

    Example:
        >>> avgpool2d_output_size(11, kernel=3, stride=3)
        3
    """
    return (size - kernel) // stride + 1
