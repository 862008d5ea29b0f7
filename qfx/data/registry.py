"""``get_dataset(name, **options)``: the dataset registry that flows and ``qfx train`` use."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch.utils.data import TensorDataset

from qfx.data.breast_cancer import BREAST_CANCER_CLASSES, load_breast_cancer_split
from qfx.data.cifar10 import cifar10_classes, load_cifar10
from qfx.data.digits import load_digits_split
from qfx.data.synthetic import (
    synthetic_classification,
    synthetic_kws,
    synthetic_machine_sound,
    synthetic_shapes,
    synthetic_vww,
)

__all__ = ["DatasetSplit", "get_dataset", "dataset_names", "dataset_options"]


@dataclass
class DatasetSplit:
    """A train/test pair plus what a model and an exporter need to know about it.

    Example:
        >>> split = get_dataset("digits")
        >>> split.input_shape, split.num_classes
        ((1, 8, 8), 10)
    """

    name: str
    train: TensorDataset
    test: TensorDataset
    input_shape: tuple[int, ...]
    num_classes: int
    classes: list[str] | None = None


def _digits(**options: object) -> DatasetSplit:
    train, test = load_digits_split(**options)
    return DatasetSplit("digits", train, test, (1, 8, 8), 10, [str(i) for i in range(10)])


def _cifar10(**options: object) -> DatasetSplit:
    train, test = load_cifar10(**options)
    return DatasetSplit("cifar10", train, test, (3, 32, 32), 10,
                        cifar10_classes(options["root"]))


def _synthetic(**options: object) -> DatasetSplit:
    train, test = synthetic_classification(**options)
    num_classes = int(options.get("num_classes", _default(synthetic_classification,
                                                          "num_classes")))
    return DatasetSplit("synthetic", train, test, tuple(train.tensors[0].shape[1:]), num_classes)


def _synthetic_kws(**options: object) -> DatasetSplit:
    train, test = synthetic_kws(**options)
    return DatasetSplit("synthetic_kws", train, test, (1, 49, 10), 12)


def _synthetic_vww(**options: object) -> DatasetSplit:
    train, test = synthetic_vww(**options)
    return DatasetSplit("synthetic_vww", train, test, tuple(train.tensors[0].shape[1:]), 2,
                        ["no_person (synthetic)", "person (synthetic)"])


# flows12: labelled SYNTHETIC data of the anomaly-detection and segmentation tasks
def _synthetic_machine_sound(**options: object) -> DatasetSplit:
    train, test = synthetic_machine_sound(**options)
    return DatasetSplit("synthetic_machine_sound", train, test, (640,), 2,
                        ["normal (synthetic)", "anomalous (synthetic)"])


def _synthetic_shapes(**options: object) -> DatasetSplit:
    train, test = synthetic_shapes(**options)
    return DatasetSplit("synthetic_shapes", train, test, tuple(train.tensors[0].shape[1:]), 2,
                        ["background (synthetic)", "shape (synthetic)"])


# issue #16: a second real task with data offline (scikit-learn's bundled breast-cancer data)
def _breast_cancer(**options: object) -> DatasetSplit:
    train, test = load_breast_cancer_split(**options)
    return DatasetSplit("breast_cancer", train, test, (30,), 2, list(BREAST_CANCER_CLASSES))


def _default(fn: Callable[..., object], name: str) -> object:
    return inspect.signature(fn).parameters[name].default


# name -> (builder, the loader whose keyword arguments are the dataset's options)
_REGISTRY: dict[str, tuple[Callable[..., DatasetSplit], Callable[..., object]]] = {
    "digits": (_digits, load_digits_split),
    "cifar10": (_cifar10, load_cifar10),
    "synthetic": (_synthetic, synthetic_classification),
    # ops-window: labelled SYNTHETIC stand-ins for MLPerf Tiny's KWS and VWW data
    "synthetic_kws": (_synthetic_kws, synthetic_kws),
    "synthetic_vww": (_synthetic_vww, synthetic_vww),
    # flows12: labelled SYNTHETIC anomaly-detection frames and segmentation shapes
    "synthetic_machine_sound": (_synthetic_machine_sound, synthetic_machine_sound),
    "synthetic_shapes": (_synthetic_shapes, synthetic_shapes),
    # issue #16: real tabular data (breast cancer, 30 standardised features, 2 classes)
    "breast_cancer": (_breast_cancer, load_breast_cancer_split),
}


def dataset_names() -> tuple[str, ...]:
    """Names ``get_dataset`` accepts.

    Example:
        >>> dataset_names()[:5]
        ('digits', 'cifar10', 'synthetic', 'synthetic_kws', 'synthetic_vww')
    """
    return tuple(_REGISTRY)


def dataset_options(name: str) -> dict[str, object]:
    """The options of dataset ``name`` with their defaults (``inspect.Parameter.empty``: required).

    Example:
        >>> sorted(dataset_options("digits"))
        ['seed', 'test_fraction']
    """
    _check_name(name)
    params = inspect.signature(_REGISTRY[name][1]).parameters
    return {k: p.default for k, p in params.items()}


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(_REGISTRY)}")


def get_dataset(name: str, **options: object) -> DatasetSplit:
    """Build dataset ``name`` ("digits", "cifar10" with ``root=``, "synthetic") with options.

    Unknown or missing options raise a one-line ValueError naming the allowed ones.

    Example:
        >>> split = get_dataset("synthetic", n=100, shape=(1, 8, 8), num_classes=3)
        >>> len(split.train) + len(split.test), split.num_classes
        (100, 3)
    """
    _check_name(name)
    allowed = dataset_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; "
                         f"allowed: {', '.join(allowed)}")
    missing = [k for k, d in allowed.items() if d is inspect.Parameter.empty and k not in options]
    if missing:
        raise ValueError(f"dataset {name!r} needs option(s): {', '.join(missing)}")
    return _REGISTRY[name][0](**options)
