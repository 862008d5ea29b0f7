"""``get_model(name, **kwargs)``: the float model registry."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from qfx.zoo.models import digits_cnn, resnet8, resnet20

__all__ = ["ModelSpec", "MODELS", "get_model", "model_names", "model_spec"]


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry: its builder, the input shape it expects and the dataset it was made for.

    Example:
        >>> model_spec("resnet8").input_shape
        (3, 32, 32)
    """

    name: str
    builder: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    dataset: str


MODELS: dict[str, ModelSpec] = {
    "digits_cnn": ModelSpec("digits_cnn", digits_cnn, (1, 8, 8), "digits"),
    "resnet8": ModelSpec("resnet8", resnet8, (3, 32, 32), "cifar10"),
    "resnet20": ModelSpec("resnet20", resnet20, (3, 32, 32), "cifar10"),
}


def model_names() -> tuple[str, ...]:
    """Names ``get_model`` accepts.

    Example:
        >>> model_names()
        ('digits_cnn', 'resnet8', 'resnet20')
    """
    return tuple(MODELS)


def model_spec(name: str) -> ModelSpec:
    """The registry entry for ``name`` (clear error listing known names otherwise).

    Example:
        >>> model_spec("digits_cnn").dataset
        'digits'
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name]


def get_model(name: str, **kwargs: object) -> nn.Module:
    """Build the float model ``name`` ("digits_cnn", "resnet8", "resnet20").

    Example:
        >>> get_model("resnet8", num_classes=10).fc.out_features
        10
    """
    spec = model_spec(name)
    allowed = inspect.signature(spec.builder).parameters
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for model {name!r}; "
                         f"allowed: {', '.join(allowed) or '(none)'}")
    return spec.builder(**kwargs)
