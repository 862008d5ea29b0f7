"""Tasks, their losses and metrics: a perfect anomaly detector scores AUC 1.0, a constant
reconstruction's MSE is the data's variance, segmentation's pixel accuracy and mean IoU, and
the reconstruction / per-pixel losses train."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from qfx.data import get_dataset
from qfx.training.config import ConfigError, parse_train_config
from qfx.training.tasks import (
    TASKS,
    reconstruction_metrics,
    roc_auc,
    segmentation_metrics,
    task_spec,
)
from qfx.training.trainer import evaluate, train


@pytest.fixture(scope="module")
def sound():
    split = get_dataset("synthetic_machine_sound", n=160)
    return split.train.tensors[0].numpy(), *(t.numpy() for t in split.test.tensors)


def test_roc_auc_orders_ties_and_single_classes():
    labels = np.array([0, 0, 1, 1])
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert roc_auc(np.array([0.1, 0.5, 0.5, 0.9]), labels) == 0.875  # one tie counts half
    assert math.isnan(roc_auc(np.array([0.1, 0.2]), np.array([0, 0])))


def test_a_perfect_detector_scores_auc_1_and_the_noise_floor(sound):
    train_x, x, y = sound
    mean = train_x.mean(0)
    # the normal structure (its principal subspace): rebuilds normal frames up to the noise
    basis = np.linalg.svd(train_x - mean, full_matrices=False)[2][:6]
    rebuilt = (x - mean) @ basis.T @ basis + mean
    m = reconstruction_metrics(rebuilt, x, y)
    assert m["auc"] == 1.0 and m["mse"] < 0.01
    # the reverse score (anomalies rebuilt perfectly, normal frames not) is ranked last
    worst = np.where(y[:, None] == 1, x, x + 1.0)
    assert reconstruction_metrics(worst, x, y)["auc"] == 0.0


def test_a_constant_reconstruction_gets_the_data_variance(sound):
    _, x, y = sound
    normal = x[y == 0].astype(np.float64)
    constant = np.broadcast_to(normal.mean(0), x.shape)
    m = reconstruction_metrics(constant, x, y)
    assert m["mse"] == pytest.approx(normal.var(0).mean(), rel=1e-12)
    assert 0.0 <= m["auc"] <= 1.0


def test_segmentation_metrics():
    y = get_dataset("synthetic_shapes", n=8).test.tensors[1].numpy()
    perfect = np.stack([y == 0, y == 1], axis=1).astype(np.float64)
    assert segmentation_metrics(perfect, None, y) == {"pixel_accuracy": 1.0, "mean_iou": 1.0}
    background = (y == 0).mean()
    m = segmentation_metrics(np.stack([np.ones(y.shape), np.zeros(y.shape)], 1), None, y)
    assert m["pixel_accuracy"] == background and m["mean_iou"] == background / 2


def test_task_picks_the_loss_and_refuses_a_wrong_one():
    cfg = parse_train_config({"dataset": "synthetic_machine_sound", "model": "fc_autoencoder",
                              "task": "reconstruction"})
    assert cfg.training.loss == "reconstruction_mse" and cfg.to_dict()["task"] == "reconstruction"
    assert parse_train_config({"dataset": "digits", "model": "digits_cnn"}).task == \
        "classification"
    with pytest.raises(ConfigError, match=r"training.loss: 'cross_entropy' does not train task "
                                          r"'reconstruction'; allowed: reconstruction_mse"):
        parse_train_config({"dataset": "digits", "model": "digits_cnn", "task": "reconstruction",
                            "training": {"loss": "cross_entropy"}})
    with pytest.raises(ConfigError, match=r"task: invalid value 'regression'; allowed: "
                                          r"classification, segmentation, reconstruction"):
        parse_train_config({"dataset": "digits", "model": "digits_cnn", "task": "regression"})
    with pytest.raises(ConfigError, match=r"training.loss: invalid value 'l1'"):
        parse_train_config({"dataset": "digits", "model": "digits_cnn",
                            "training": {"loss": "l1"}})
    with pytest.raises(ValueError, match="unknown task"):
        task_spec("regression")
    assert set(TASKS) == {"classification", "segmentation", "reconstruction"}


def test_reconstruction_mse_trains_an_autoencoder(sound):
    split = get_dataset("synthetic_machine_sound", n=160)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(640, 8), nn.Linear(8, 640))
    before, acc = evaluate(model, split.test, loss="reconstruction_mse")
    res = train(model, split.train, split.test, epochs=3, batch_size=16, lr=0.003,
                progress=False, loss="reconstruction_mse")
    assert math.isnan(acc) and math.isnan(res.final_test_acc)
    train_losses = [r["train_loss"] for r in res.history]
    assert train_losses == sorted(train_losses, reverse=True)  # it learns to rebuild
    assert res.history[-1]["test_loss"] < before
    assert res.metadata["train"]["loss"] == "reconstruction_mse"


def test_per_pixel_cross_entropy_counts_pixels():
    split = get_dataset("synthetic_shapes", n=48)
    torch.manual_seed(0)
    model = nn.Conv2d(1, 2, 3, padding=1)
    res = train(model, split.train, split.test, epochs=2, lr=0.05, progress=False)
    with torch.no_grad():
        pred = model(split.test.tensors[0]).argmax(1)
    # the accuracy is over the pixels of the label maps, not over the samples
    assert res.final_test_acc == (pred == split.test.tensors[1]).float().mean().item()


def test_probability_nll_is_the_cross_entropy_of_the_logits_behind_a_softmax():
    from qfx.training.trainer import LOSSES

    torch.manual_seed(0)
    z, y = torch.randn(16, 10), torch.randint(0, 10, (16,))
    nll = LOSSES["probability_nll"].fn(torch.softmax(z, 1), None, y)
    assert abs(float(nll) - float(nn.functional.cross_entropy(z, y))) < 1e-5  # float32 logs
    zero = torch.zeros(2, 3)
    zero[:, 0] = 1.0  # a quantized probability can be exactly 0: finite loss, not inf
    assert math.isfinite(float(LOSSES["probability_nll"].fn(zero, None, torch.tensor([1, 2]))))
    assert LOSSES["probability_nll"].accuracy
    cfg = parse_train_config({"dataset": "digits", "model": "digits_mlp_softmax",
                              "training": {"loss": "probability_nll"}})
    assert cfg.task == "classification" and cfg.training.loss == "probability_nll"
