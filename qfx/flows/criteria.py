"""A flow's pass criteria (``flow.criteria`` in its YAML): one entry per criterion in
:data:`CRITERIA`, each with the value type it takes, the tasks it applies to, the check of its
value at load time and the judgement of a finished run's metrics.

Threshold criteria compare one metric of the run (``FlowResult.metrics``) with their value:
``min_accuracy`` (exact fixed-point accuracy of the trained model), ``min_hw_accuracy`` (of the
C-simulated outputs), ``min_auc`` / ``max_mse`` (reconstruction: anomaly-detection ROC AUC and
reconstruction MSE of the frozen model's outputs), ``min_pixel_accuracy`` / ``min_mean_iou``
(segmentation); ``min_hw_*`` are the same measures of the C-simulated outputs. ``bit_exact`` and
``fits_board`` judge the C-simulation and the export; ``budget_met`` holds the export estimate to
the training budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["CriterionSpec", "CRITERIA", "check_criteria", "judge_criteria", "proofs_text"]

# (passed, message) of a criterion, from its value, the run's metrics and the stages that ran
Judge = Callable[[Any, dict[str, Any], set[str]], tuple[bool, str]]


@dataclass(frozen=True)
class CriterionSpec:
    """One criterion: ``kind`` (its value's type), ``tasks`` it applies to (None: every
    task), ``check(value)`` (a ValueError's text for a bad value, else None) and ``judge``.

    Example:
        >>> CRITERIA["min_auc"].tasks
        ('reconstruction',)
    """

    key: str
    kind: type | tuple[type, ...]
    judge: Judge
    tasks: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] = lambda value: None


def _threshold(key: str, metric: str, at_least: bool, tasks: tuple[str, ...],
               fraction: bool = True) -> CriterionSpec:
    """A criterion ``metric >= value`` (``at_least``) or ``metric <= value``."""

    def judge(limit: Any, metrics: dict[str, Any], ran: set[str]) -> tuple[bool, str]:
        value = metrics.get(metric)
        measured = value is not None and not math.isnan(value)
        ok = measured and (value >= limit if at_least else value <= limit)
        shown = f"{value:.4f}" if measured else "not measured"
        return bool(ok), f"{metric} {shown} (need {'>=' if at_least else '<='} {limit})"

    def check(value: Any) -> str | None:
        if not 0 <= value < float("inf"):
            return f"must be {'a fraction' if fraction else 'a number'} >= 0, got {value}"
        return None

    return CriterionSpec(key, (int, float), judge, tasks, check)


def proofs_text(proofs: list[dict[str, Any]]) -> str:
    """``native arithmetic on 100 samples, synthesis arithmetic (-DQFX_AP_ARITH) on 20``.

    Example:
        >>> proofs_text([{"arith": "synth", "samples": 2, "bit_exact": True}])
        'synthesis arithmetic (-DQFX_AP_ARITH) bit-exact on 2 samples'
    """
    names = {"native": "native C-sim arithmetic",
             "synth": "synthesis arithmetic (-DQFX_AP_ARITH)"}
    parts = [f"{names.get(p['arith'], p['arith'])}"
             f"{' through the AXI-Stream top' if p.get('top') == 'axis' else ''} "
             f"{'bit-exact' if p['bit_exact'] else 'MISMATCH'} on {p['samples']} samples"
             for p in proofs]
    return ", ".join(parts) if parts else "no arithmetic path ran"


def _bit_exact(wanted: Any, m: dict[str, Any], ran: set[str]) -> tuple[bool, str]:
    if "csim" not in ran:
        return False, "C-simulation did not run"
    proven = m.get("csim_proven") or {}
    paths = proofs_text(m.get("csim_proofs") or [])
    if not m.get("bit_exact"):
        return False, (f"{m.get('csim_mismatches')} output values differ from the software "
                       f"model ({paths})")
    if "synth" not in proven:
        # the code that synthesis compiles must be proven, not only the native C-sim
        return False, (f"the synthesis arithmetic (-DQFX_AP_ARITH) was not proven ({paths}): "
                       "set csim.arith to both or synth")
    return True, f"C-sim == software model: {paths}"


def _fits_board(wanted: Any, m: dict[str, Any], ran: set[str]) -> tuple[bool, str]:
    fits = m.get("fits_board")
    return bool(fits), ("estimate within the board's budget" if fits else
                        "export did not run" if fits is None else
                        "estimate exceeds the board's budget")


def _budget_met(wanted: Any, m: dict[str, Any], ran: set[str]) -> tuple[bool, str]:
    """The export estimate within the training budget (``metrics["training_budget"]``),
    resource by resource."""
    budget = m.get("training_budget") or {}
    est = {k.lower(): v for k, v in (m.get("estimate") or {}).items()}
    if not est:
        return False, "export did not run"
    if "lut_equiv" in budget:
        from qfx.training.budget import lut_equiv

        est["lut_equiv"] = lut_equiv(est["lut"], est["dsp"])
    parts, ok = [], True
    for k, limit in budget.items():
        if k not in est:  # EBOPs: a training measure, not an estimate's figure
            parts.append(f"{k} not in the export estimate")
            continue
        ok = ok and est[k] <= limit
        parts.append(f"{k} {est[k]:,} of {limit:,.0f}")
    return ok, (("estimate within the training budget: " if ok else
                 "estimate exceeds the training budget: ") + ", ".join(parts))


_CLS, _SEG, _REC = ("classification",), ("segmentation",), ("reconstruction",)

#: key -> criterion, in the order a report lists them.
CRITERIA: dict[str, CriterionSpec] = {c.key: c for c in (
    _threshold("min_accuracy", "test_accuracy", True, _CLS),
    _threshold("min_hw_accuracy", "hw_accuracy", True, _CLS),
    # flows12: reconstruction (anomaly detection) and segmentation
    _threshold("min_auc", "auc", True, _REC),
    _threshold("min_hw_auc", "hw_auc", True, _REC),
    _threshold("max_mse", "mse", False, _REC, fraction=False),
    _threshold("min_pixel_accuracy", "pixel_accuracy", True, _SEG),
    _threshold("min_hw_pixel_accuracy", "hw_pixel_accuracy", True, _SEG),
    _threshold("min_mean_iou", "mean_iou", True, _SEG),
    CriterionSpec("bit_exact", bool, _bit_exact),
    CriterionSpec("fits_board", bool, _fits_board),
    CriterionSpec("budget_met", bool, _budget_met),
)}


def check_criteria(where: str, criteria: dict[str, Any], task: str) -> None:
    """Every criterion's value and task, checked when the flow loads: one line naming the
    key (``where`` is the flow file).

    Example:
        >>> check_criteria("f.yaml", {"min_auc": 0.9}, "classification")
        Traceback (most recent call last):
        ...
        ValueError: f.yaml.flow.criteria.min_auc: applies to task reconstruction, not classification
    """
    for key, value in criteria.items():
        spec = CRITERIA[key]
        if spec.tasks is not None and task not in spec.tasks:
            raise ValueError(f"{where}.flow.criteria.{key}: applies to task "
                             f"{', '.join(spec.tasks)}, not {task}")
        problem = spec.check(value)
        if problem:
            raise ValueError(f"{where}.flow.criteria.{key} {problem}")


def judge_criteria(criteria: dict[str, Any], metrics: dict[str, Any], ran: set[str]
                   ) -> list[tuple[str, bool, str]]:
    """``(key, passed, message)`` of every criterion the flow sets (a boolean one only when
    true), in :data:`CRITERIA` order.

    Example:
        >>> judge_criteria({"max_mse": 0.1, "fits_board": False}, {"mse": 0.25}, set())
        [('max_mse', False, 'mse 0.2500 (need <= 0.1)')]
    """
    return [(key, *spec.judge(criteria[key], metrics, ran)) for key, spec in CRITERIA.items()
            if key in criteria and criteria[key] is not False]
