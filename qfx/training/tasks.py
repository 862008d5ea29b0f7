"""What a model is trained to do (a config's ``task:``): the losses that fit it and the metrics
that judge its outputs. One entry per task in :data:`TASKS`.

``classification``: class scores, cross-entropy, accuracy. ``segmentation``: per-pixel class
scores (N x C x H x W) against label maps, per-pixel cross-entropy, pixel accuracy and mean IoU.
``reconstruction``: an autoencoder rebuilding its input, reconstruction MSE; with labels 0
(normal) / 1 (anomalous), the anomaly score of a sample is its reconstruction MSE and ``auc``
the area under the ROC curve of that score.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Task", "TASKS", "task_spec", "roc_auc", "classification_metrics",
           "segmentation_metrics", "reconstruction_metrics"]

Metrics = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]]


def classification_metrics(outputs: np.ndarray, inputs: np.ndarray, targets: np.ndarray
                           ) -> dict[str, float]:
    """``accuracy`` of the class scores' argmax.

    Example:
        >>> classification_metrics(np.array([[0, 1], [1, 0]]), None, np.array([1, 1]))
        {'accuracy': 0.5}
    """
    outputs = np.asarray(outputs).reshape(len(targets), -1)
    return {"accuracy": float((outputs.argmax(1) == np.asarray(targets)).mean())}


def segmentation_metrics(outputs: np.ndarray, inputs: np.ndarray, targets: np.ndarray
                         ) -> dict[str, float]:
    """``pixel_accuracy`` of the per-pixel argmax of scores (N x C x H x W) against label maps
    (N x H x W), and ``mean_iou``: intersection over union averaged over the classes present
    in the labels or the prediction.

    Example:
        >>> y = np.array([[[0, 1], [1, 1]]])
        >>> scores = np.stack([y == 0, y == 1], axis=1).astype(float)
        >>> segmentation_metrics(scores, None, y)
        {'pixel_accuracy': 1.0, 'mean_iou': 1.0}
        >>> segmentation_metrics(np.zeros_like(scores), None, y)["mean_iou"]  # all class 0
        0.125
    """
    targets = np.asarray(targets)
    outputs = np.asarray(outputs).reshape(len(targets), -1, *targets.shape[1:])
    pred = outputs.argmax(1)
    ious = []
    for c in range(outputs.shape[1]):
        union = np.logical_or(pred == c, targets == c).sum()
        if union:
            ious.append(np.logical_and(pred == c, targets == c).sum() / union)
    return {"pixel_accuracy": float((pred == targets).mean()),
            "mean_iou": float(np.mean(ious)) if ious else float("nan")}


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (higher: more anomalous) for 0/1 ``labels``: the
    probability that an anomalous sample scores above a normal one, ties counting half (the
    Mann-Whitney statistic). NaN unless both labels occur.

    Example:
        >>> roc_auc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([0, 0, 1, 1]))
        1.0
        >>> roc_auc(np.array([1.0, 1.0, 1.0]), np.array([0, 1, 1]))
        0.5
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # ties share their mean rank
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    u = ranks[labels == 1].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def reconstruction_metrics(outputs: np.ndarray, inputs: np.ndarray, targets: np.ndarray
                           ) -> dict[str, float]:
    """Per sample, the anomaly score is the reconstruction MSE; ``mse`` is its mean over the
    normal samples (label 0) and ``auc`` the ROC AUC of the score for label 1 (anomalous).

    Example:
        >>> x = np.array([[1.0, 1.0], [3.0, 3.0]])
        >>> reconstruction_metrics(np.ones((2, 2)), x, np.array([0, 1]))
        {'mse': 0.0, 'auc': 1.0}
    """
    targets = np.asarray(targets)
    inputs = np.asarray(inputs, dtype=np.float64).reshape(len(targets), -1)
    outputs = np.asarray(outputs, dtype=np.float64).reshape(inputs.shape)
    score = ((outputs - inputs) ** 2).mean(1)
    normal = score[targets == 0]
    return {"mse": float(normal.mean()) if len(normal) else float("nan"),
            "auc": roc_auc(score, targets)}


@dataclass(frozen=True)
class Task:
    """A task: its training losses (the first is the default) and the metrics of a model's
    outputs, ``metrics(outputs, inputs, targets)``. ``frozen_metrics``: a flow measures them on
    the frozen model's outputs over the held-out split (classification's accuracy is already
    measured exactly by the trainer on the whole split).

    Example:
        >>> task_spec("reconstruction").losses
        ('reconstruction_mse',)
    """

    name: str
    losses: tuple[str, ...]
    metrics: Metrics
    frozen_metrics: bool


TASKS: dict[str, Task] = {
    "classification": Task("classification", ("cross_entropy", "probability_nll"),
                           classification_metrics, False),
    "segmentation": Task("segmentation", ("cross_entropy",), segmentation_metrics, True),
    "reconstruction": Task("reconstruction", ("reconstruction_mse",), reconstruction_metrics,
                           True),
}


def task_spec(name: str) -> Task:
    """The entry of task ``name`` (one-line error naming the known tasks otherwise).

    Example:
        >>> task_spec("segmentation").losses
        ('cross_entropy',)
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
    return TASKS[name]
