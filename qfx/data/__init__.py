"""Datasets for qfx: scikit-learn digits and breast cancer, local CIFAR-10 (safe unpickling),
synthetic blobs.

Example:
    >>> from qfx.data import get_dataset
    >>> split = get_dataset("digits", test_fraction=0.2, seed=0)
    >>> len(split.train), len(split.test)
    (1437, 360)
"""

from qfx.data.augment import AUGMENTATIONS, Augmentation, get_augmentation, random_crop_flip
from qfx.data.breast_cancer import BREAST_CANCER_CLASSES, load_breast_cancer_split
from qfx.data.cifar10 import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    NORMALIZATIONS,
    UnsafePickleError,
    cifar10_classes,
    load_cifar10,
    read_cifar_batch,
)
from qfx.data.digits import DIGITS_DIVISOR, load_digits_split
from qfx.data.registry import DatasetSplit, dataset_names, dataset_options, get_dataset
from qfx.data.synthetic import synthetic_classification

__all__ = [
    "AUGMENTATIONS", "Augmentation", "get_augmentation", "random_crop_flip",
    "CIFAR10_MEAN", "CIFAR10_STD", "NORMALIZATIONS", "UnsafePickleError", "cifar10_classes",
    "load_cifar10", "read_cifar_batch", "DIGITS_DIVISOR", "load_digits_split", "DatasetSplit",
    "dataset_names", "dataset_options", "get_dataset", "synthetic_classification",
    "BREAST_CANCER_CLASSES", "load_breast_cancer_split",
]
