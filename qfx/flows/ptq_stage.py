"""The ``ptq`` stage of a flow: a float model -> HPTQ -> a calibrated qfx model, no QAT needed.

A flow with a ``ptq:`` section starts from a float model instead of quantization-aware training::

    ptq:
      float_model: model.onnx   # a float ONNX file (relative to the flow file); or leave it out
      float_epochs: 8           # ... and the flow's zoo `model` is trained in float first
      calib: real               # real (the training split) | generated (DGH) | noise
      calib_samples: 256
      dgh_iterations: 300       # for calib: generated
      finetune_epochs: 0        # > 0: QFX fine-tuning from the PTQ start (the `train` stage)
      config: {weight_bits: 8, act_bits: 8, activation_criterion: mse}   # PTQConfig fields

The flow's ``training:`` options (batch size, learning rate, ...) drive the float training and
the fine-tuning. The PTQ report (per-layer formats and errors) is written to ``ptq.md``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["PTQ_KEYS", "CALIB_SOURCES", "PTQStage", "check_ptq_section", "run_ptq_stage"]

PTQ_KEYS: dict[str, Any] = {"float_model": str, "float_epochs": int, "calib": str,
                            "calib_samples": int, "dgh_iterations": int,
                            "finetune_epochs": int, "config": dict, "seed": int}
#: where the calibration images come from (``generated``: DGH from the BatchNorm statistics)
CALIB_SOURCES = ("real", "generated", "noise")
_DEFAULTS = {"float_epochs": 10, "calib": "real", "calib_samples": 256, "dgh_iterations": 300,
             "finetune_epochs": 0, "config": {}, "seed": 0}


def check_ptq_section(where: str, section: dict[str, Any], flow_dir: Path | None
                      ) -> dict[str, Any]:
    """Validate a flow's ``ptq:`` section (types checked by the caller) and fill in defaults.

    Example:
        >>> check_ptq_section("f.yaml", {"calib": "noise"}, None)["finetune_epochs"]
        0
    """
    from qfx.ptq import PTQConfig

    ptq = {**_DEFAULTS, **section}
    if ptq["calib"] not in CALIB_SOURCES:
        raise ValueError(f"{where}.ptq.calib: invalid value {ptq['calib']!r}; allowed: "
                         f"{', '.join(CALIB_SOURCES)}")
    for key, low in (("float_epochs", 1), ("calib_samples", 2), ("dgh_iterations", 1),
                     ("finetune_epochs", 0)):
        if ptq[key] < low:
            raise ValueError(f"{where}.ptq.{key} must be at least {low}, got {ptq[key]}")
    try:
        PTQConfig.from_dict(dict(ptq["config"]))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}.ptq.config: {err}") from None
    if "float_model" in ptq:
        path = Path(ptq["float_model"]).expanduser()
        if not path.is_absolute() and flow_dir is not None:
            path = flow_dir / path
        if path.suffix.lower() != ".onnx":
            raise ValueError(f"{where}.ptq.float_model: {path} is not a float .onnx model")
        if not path.is_file():
            raise ValueError(f"{where}.ptq.float_model: {path}: no such file")
        ptq["float_model"] = path
    return ptq


@dataclass
class PTQStage:
    """What the ``ptq`` stage produced: the calibrated qfx model (trainable and freezable), the
    float model's and the PTQ model's test accuracy, and the report file."""

    model: torch.nn.Module
    float_accuracy: float
    ptq_accuracy: float
    report: Path
    calib_kind: str


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def run_ptq_stage(ptq: dict[str, Any], train_config: Any, split: Any, out: Path, *,
                  progress: bool = True) -> PTQStage:
    """Float model (ONNX, or the zoo model trained in float), then HPTQ on the calibration set;
    ``ptq`` is a section checked by :func:`check_ptq_section`."""
    from qfx.atomic import atomic_write_text
    from qfx.ptq import PTQConfig, generate_calibration_data, hptq
    from qfx.training.config import run_training

    x_test, y_test = split.test.tensors[0], split.test.tensors[1]
    shape = tuple(split.input_shape)
    if "float_model" in ptq:
        from qfx.frontends.onnx_float import onnx_to_torch

        float_model = onnx_to_torch(ptq["float_model"]).eval()
    else:  # the flow's zoo model, trained in float with the flow's training options
        cfg = copy.deepcopy(train_config)
        cfg.quantization = None
        cfg.out_dir = out / "float"
        cfg.override_training(epochs=ptq["float_epochs"])
        float_model = run_training(cfg, progress=progress).model.cpu().eval()
    float_accuracy = _accuracy(float_model, x_test, y_test)  # before HPTQ folds BatchNorm
    n, seed = ptq["calib_samples"], ptq["seed"]
    kind = "real" if ptq["calib"] == "real" else ptq["calib"]
    if kind == "real":
        calib = split.train.tensors[0][:n]
    elif kind == "noise":  # the baseline DGH must beat; labelled noise in the report
        calib = torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))
    else:
        calib = generate_calibration_data(float_model, n, shape,
                                          iterations=ptq["dgh_iterations"], seed=seed,
                                          save=out / "calibration.generated.npz")
    cfg = PTQConfig.from_dict({**ptq["config"], "progress": progress})
    res = hptq(float_model, calib, cfg, calib_kind=kind, eval_data=(x_test, y_test))
    report = out / "ptq.md"
    atomic_write_text(report, res.report.to_markdown())
    return PTQStage(res.model, float_accuracy, _accuracy(res.model, x_test, y_test), report,
                    kind)
