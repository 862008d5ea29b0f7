"""``get_model(name, **kwargs)``: the model registry.

Float models (``kind="float"``) are plain torch.nn, for ``qfx.quantize_model``; binarized
models (``kind="qfx"``) are built from qfx layers already and are trained and frozen as is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from qfx.zoo.bnn import cnv_w1a1, digits_bnn
from qfx.zoo.models import (
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

__all__ = ["ModelSpec", "MODELS", "get_model", "model_names", "model_spec"]


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry: its builder, the input shape it expects, the dataset it was made for, and
    its kind: ``"float"`` (plain torch.nn, to quantize) or ``"qfx"`` (qfx layers already).

    Example:
        >>> model_spec("resnet8").input_shape
        (3, 32, 32)
        >>> model_spec("cnv_w1a1").kind
        'qfx'
    """

    name: str
    builder: Callable[..., nn.Module]
    input_shape: tuple[int, ...]
    dataset: str
    kind: str = "float"


MODELS: dict[str, ModelSpec] = {
    "digits_cnn": ModelSpec("digits_cnn", digits_cnn, (1, 8, 8), "digits"),
    "resnet8": ModelSpec("resnet8", resnet8, (3, 32, 32), "cifar10"),
    "resnet20": ModelSpec("resnet20", resnet20, (3, 32, 32), "cifar10"),
    "cnv_w1a1": ModelSpec("cnv_w1a1", cnv_w1a1, (3, 32, 32), "cifar10", kind="qfx"),
    "digits_bnn": ModelSpec("digits_bnn", digits_bnn, (1, 8, 8), "digits", kind="qfx"),
    # a segmentation model (task: segmentation), made for SYNTHETIC shapes
    "unet": ModelSpec("unet", unet, (1, 16, 16), "synthetic_shapes"),
    # ops-window: MLPerf Tiny (no real data offline: labelled SYNTHETIC data of the same shape)
    "ds_cnn": ModelSpec("ds_cnn", ds_cnn, (1, 49, 10), "synthetic_kws"),
    "mobilenet_v1_025": ModelSpec("mobilenet_v1_025", mobilenet_v1_025, (3, 96, 96),
                                  "synthetic_vww"),
    "mobilenet_v1_025_32": ModelSpec("mobilenet_v1_025_32", mobilenet_v1_025, (3, 32, 32),
                                     "synthetic_vww"),
    "digits_mlp_softmax": ModelSpec("digits_mlp_softmax", digits_mlp_softmax, (1, 8, 8),
                                    "digits"),
    # MLPerf Tiny anomaly detection (task: reconstruction; no ToyADMOS offline: SYNTHETIC
    # "machine sound" frames of the same shape)
    "fc_autoencoder": ModelSpec("fc_autoencoder", fc_autoencoder, (640,),
                                "synthetic_machine_sound"),
    # issue #16: an hls4ml-style MLP for real tabular data (breast cancer)
    "cancer_mlp": ModelSpec("cancer_mlp", cancer_mlp, (30,), "breast_cancer"),
}


def model_names(kind: str | None = None) -> tuple[str, ...]:
    """Names ``get_model`` accepts (only those of one ``kind``, "float" or "qfx", if given).

    Example:
        >>> model_names()[:5]
        ('digits_cnn', 'resnet8', 'resnet20', 'cnv_w1a1', 'digits_bnn')
        >>> model_names("float")[:3]
        ('digits_cnn', 'resnet8', 'resnet20')
    """
    if kind is not None and kind not in ("float", "qfx"):
        raise ValueError(f"kind must be 'float', 'qfx' or None, got {kind!r}")
    return tuple(n for n, spec in MODELS.items() if kind is None or spec.kind == kind)


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
    """Build the model ``name`` (float: "digits_cnn", "resnet8", "resnet20",
    "digits_mlp_softmax"; binarized
    qfx models: "cnv_w1a1", "digits_bnn").

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
