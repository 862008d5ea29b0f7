"""Flows of other tasks than classification: the shipped anomaly-detection and segmentation
flows load and validate, their criteria are checked against the task when the flow loads (one
line naming the key), and a tiny reconstruction flow measures AUC and MSE on the frozen model's
outputs and judges them."""

from __future__ import annotations

import pytest

from qfx.flows.criteria import CRITERIA, judge_criteria
from qfx.flows.flow import load_flow, run_flow

_AD = {"task": "reconstruction", "dataset": {"name": "synthetic_machine_sound", "n": 96},
       "model": {"name": "fc_autoencoder", "hidden": 16, "depth": 1},
       "quantization": {"bits": 8}}


@pytest.mark.parametrize("path, task, loss, criteria", [
    ("flows/ad-autoencoder-ultra96.yaml", "reconstruction", "reconstruction_mse",
     {"min_auc", "max_mse"}),
    ("flows/seg-unet-ultra96.yaml", "segmentation", "cross_entropy",
     {"min_pixel_accuracy", "min_mean_iou"}),
])
def test_shipped_task_flows_load(path, task, loss, criteria):
    spec = load_flow(path)
    assert spec.task == task and spec.train.training.loss == loss
    on = {key for key, value in spec.criteria.items() if value is not False}
    assert criteria | {"bit_exact", "fits_board"} == on
    assert spec.train.dataset.startswith("synthetic_")  # labelled SYNTHETIC data
    assert spec.csim["arith"] == "both" and spec.board == "ultra96"


def test_softmax_classifier_flow_trains_on_its_probabilities():
    spec = load_flow("flows/digits-softmax-ultra96.yaml")
    assert spec.task == "classification" and spec.train.model == "digits_mlp_softmax"
    assert spec.train.training.loss == "probability_nll" and spec.csim["arith"] == "both"


@pytest.mark.parametrize("change, match", [
    ({"flow": {"criteria": {"min_accuracy": 0.9}}},
     r"flow.criteria.min_accuracy: applies to task classification, not reconstruction"),
    ({"flow": {"criteria": {"min_auc": "high"}}}, r"flow.criteria.min_auc: invalid value"),
    ({"flow": {"criteria": {"max_mse": -1}}},
     r"flow.criteria.max_mse must be a number >= 0, got -1"),
    ({"flow": {"criteria": {"min_iou": 0.5}}}, r"flow.criteria.min_iou: unknown key"),
    ({"task": "denoising"}, r"task: invalid value 'denoising'"),
    ({"training": {"loss": "cross_entropy"}}, r"training.loss: 'cross_entropy' does not train"),
    ({"quantization": None, "ptq": {}}, r"ptq: post-training quantisation is judged on "
                                         r"accuracy \(task classification\), not task"),
])
def test_task_flow_errors_name_the_key(change, match):
    with pytest.raises(ValueError, match=match):
        load_flow({**_AD, **change})


def test_criteria_registry_judges_each_direction():
    assert {"min_auc", "max_mse", "min_pixel_accuracy", "min_mean_iou"} <= set(CRITERIA)
    m = {"auc": 0.95, "mse": 0.3, "pixel_accuracy": 0.8}
    got = judge_criteria({"min_auc": 0.9, "max_mse": 0.25, "min_mean_iou": 0.5}, m, set())
    assert [(k, ok) for k, ok, _ in got] == [("min_auc", True), ("max_mse", False),
                                             ("min_mean_iou", False)]
    assert got[1][2] == "mse 0.3000 (need <= 0.25)"
    assert got[2][2] == "mean_iou not measured (need >= 0.5)"
    assert judge_criteria({"min_auc": 0.5}, {"auc": float("nan")}, set())[0][1] is False


def test_tiny_reconstruction_flow_measures_the_frozen_model(tmp_path):
    spec = load_flow({**_AD, "training": {"epochs": 1, "batch_size": 16, "lr": 0.01},
                      "flow": {"criteria": {"min_auc": 0.0, "max_mse": 1e-9}}})
    r = run_flow(spec, out_dir=tmp_path / "ad", skip=("export", "csim", "synth"),
                 progress=False)
    assert [s.status for s in r.stages][:2] == ["passed", "passed"]
    assert 0.0 <= r.metrics["auc"] <= 1.0 and r.metrics["mse"] > 1e-9
    assert "test_accuracy" not in r.metrics and r.metrics["test_loss"] > 0
    verdict = {c.name: c.passed for c in r.criteria}
    assert verdict["min_auc"] and not verdict["max_mse"] and not verdict["bit_exact"]
    assert r.reason.startswith("criterion max_mse failed: mse ")
