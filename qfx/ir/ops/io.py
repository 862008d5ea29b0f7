"""``input`` (the one cast of a graph input to the model's input format) and ``flatten``
(NCHW order, all dimensions after the batch; no cast, the input's format)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from qfx.ir.ops.base import OpSpec, register, where

if TYPE_CHECKING:
    from qfx.ir.graph import Edge, Node

__all__ = ["Flatten", "Input"]


@register
class Input(OpSpec):
    name = "input"

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        return xs[0]


@register
class Flatten(OpSpec):
    name = "flatten"
    same_format = True
    casts = False
    keeps_binary = True

    def infer_shape(self, node: Node, ins: Sequence[Edge]) -> tuple[int, ...]:
        return (math.prod(ins[0].shape),)

    def check_types(self, node: Node, ins: Sequence[Edge], out: Edge) -> None:
        if out.type != ins[0].type:
            raise ValueError(f"{where(node)}: must keep the type and flatten all dimensions")

    def execute(self, node: Node, xs: list[torch.Tensor], device: torch.device
                ) -> torch.Tensor:
        return xs[0].reshape(xs[0].shape[0], -1)

    def channel_ties(self, node: Node, ins: Sequence[Edge], out: Edge
                     ) -> list[list[tuple[int, int]]] | None:
        """Output value f (NCHW order) is in input channel f // (H * W)."""
        if not ins[0].shape:
            return None
        per = math.prod(ins[0].shape[1:])
        return [[(0, f // per)] for f in range(out.shape[0])]
