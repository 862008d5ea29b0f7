"""Declarative flows: [ptq ->] train -> freeze -> export -> C-simulate -> report, with criteria.

A flow is one YAML file (see ``flows/``): the training sections of ``qfx train`` plus
``board``, ``export``, ``csim`` and ``flow`` (criteria); a ``ptq`` section starts from a float
model quantised by HPTQ instead of quantization-aware training (:mod:`qfx.flows.ptq_stage`).
:func:`run_flow` runs the stages in order, writes a markdown report with plots and (optionally)
JUnit XML for CI, and returns a :class:`FlowResult` whose ``ok``/``reason`` say whether every
criterion held.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qfx.atomic import FOLDER_MARKERS, atomic_open, atomic_write_text, is_qfx_folder
from qfx.flows.criteria import CRITERIA, check_criteria, judge_criteria, proofs_text

__all__ = ["FlowSpec", "FlowResult", "StageResult", "Criterion", "budget_measure", "load_flow",
           "run_flow", "STAGES"]

STAGES = ("ptq", "train", "freeze", "export", "csim", "synth")
FLOW_FORMAT = FOLDER_MARKERS["flow.json"]
_EXPORT_KEYS = {"io": str, "reuse": (int, dict, str), "clock_mhz": (int, float), "on_budget": str,
                "project_name": str,
                "budget": (int, float), "target_fps": (int, float),
                "target_latency_us": (int, float)}
_CSIM_KEYS = {"samples": int, "jobs": int, "timeout": (int, float), "arith": str,
              "synth_samples": int}
_CRITERIA_KEYS = {key: c.kind for key, c in CRITERIA.items()}  # qfx.flows.criteria
_FLOW_KEYS = {"criteria": dict, "synth": str}


def _check_section(where: str, section: Any, allowed: dict[str, Any]) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ValueError(f"{where}: expected a mapping with keys {', '.join(allowed)}")
    for key, value in section.items():
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown key; allowed: {', '.join(allowed)}")
        kinds = allowed[key]
        if not isinstance(value, kinds) or (kinds is not bool and isinstance(value, bool)):
            raise ValueError(f"{where}.{key}: invalid value {value!r}")
    return dict(section)


@dataclass
class FlowSpec:
    """A parsed flow: the training config plus board, export, C-sim and criteria.

    Example:
        >>> spec = load_flow({"dataset": "digits", "model": "digits_cnn",
        ...                   "quantization": {"bits": 8}, "board": "ultra96",
        ...                   "flow": {"criteria": {"min_accuracy": 0.9}}})
        >>> spec.board, spec.criteria["bit_exact"], spec.csim["samples"]
        ('ultra96', True, 100)
    """

    train: Any  # qfx.training.config.TrainConfig
    board: str = "ultra96"
    export: dict[str, Any] = field(default_factory=dict)
    csim: dict[str, Any] = field(default_factory=dict)
    criteria: dict[str, Any] = field(default_factory=dict)
    synth: str = "auto"
    description: str = ""
    ptq: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.train.name

    @property
    def task(self) -> str:
        """What the model does (``task:``, :data:`qfx.training.tasks.TASKS`)."""
        return self.train.task


def load_flow(source: str | Path | dict[str, Any]) -> FlowSpec:
    """Read and validate a flow YAML file (or an already-loaded mapping)."""
    from qfx.training.config import load_train_config, parse_train_config

    cfg = (parse_train_config(source) if isinstance(source, dict)
           else load_train_config(source))
    extra = cfg.extra
    where = str(cfg.source or "flow")
    from qfx.zoo.registry import model_spec

    kind = model_spec(cfg.model).kind
    ptq = None
    if extra.get("ptq") is not None:
        from qfx.flows.ptq_stage import PTQ_KEYS, check_ptq_section

        if cfg.quantization is not None or kind == "qfx":
            raise ValueError(f"{where}.ptq: a PTQ flow quantises a float model: remove the "
                             "`quantization:` section (the formats come from ptq.config)"
                             if kind != "qfx" else f"{where}.ptq: model {cfg.model!r} is built "
                             "from qfx layers (already quantized); PTQ needs a float model")
        if cfg.task != "classification":
            raise ValueError(f"{where}.ptq: post-training quantisation is judged on accuracy "
                             f"(task classification), not task {cfg.task}")
        ptq = check_ptq_section(where, _check_section(f"{where}.ptq", extra["ptq"], PTQ_KEYS),
                                cfg.source.parent if cfg.source else None)
    elif cfg.quantization is None and kind != "qfx":
        raise ValueError(f"{where}: a flow needs a `quantization:` section (e.g. "
                         "{bits: 8}): only a fixed-point model can be exported (or a zoo model "
                         "built from qfx layers, such as digits_bnn)")
    if cfg.quantization is not None and kind == "qfx":
        raise ValueError(f"{where}: model {cfg.model!r} is built from qfx layers (already "
                         "quantized): remove the `quantization:` section")
    if cfg.quantization is not None:
        from qfx.nn.config import QConfig

        try:  # fail at load time, not after training has started
            QConfig.from_dict(cfg.quantization)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}.quantization: {err}") from None
    board = extra.get("board", "ultra96")
    if not isinstance(board, str):
        raise ValueError(f"{where}.board: expected a board name or a path to a board YAML")
    export = {"io": "parallel", "reuse": 1, "on_budget": "error", "project_name": "qfx_model"}
    export.update(_check_section(f"{where}.export", extra.get("export"), _EXPORT_KEYS))
    from qfx.backends.hls.export import check_reuse_options

    try:  # "auto", an int for every layer, or {node: reuse, "*": default or "auto"}
        check_reuse_options(export["reuse"], export.get("budget", 1.0),
                            export.get("target_fps"), export.get("target_latency_us"))
    except ValueError as err:
        key = next((k for k in ("reuse", "budget", "target") if k in str(err)), "")
        raise ValueError(f"{where}.export{'.' + key if key else ''}: {err}") from None
    csim = {"samples": 100, "jobs": None, "timeout": 600.0, "arith": "both",
            "synth_samples": None}
    csim.update(_check_section(f"{where}.csim", extra.get("csim"), _CSIM_KEYS))
    if csim["arith"] not in ("native", "synth", "both"):
        raise ValueError(f"{where}.csim.arith: invalid value {csim['arith']!r}; allowed: "
                         "native, synth, both")
    if csim["synth_samples"] is not None and csim["synth_samples"] < 1:
        raise ValueError(f"{where}.csim.synth_samples must be at least 1")
    flow = _check_section(f"{where}.flow", extra.get("flow"), _FLOW_KEYS)
    # budget_met: a training budget is a promise the export estimate must keep
    criteria = {"bit_exact": True, "fits_board": True,
                "budget_met": bool(cfg.training.budget)}
    criteria.update(_check_section(f"{where}.flow.criteria", flow.get("criteria"),
                                   _CRITERIA_KEYS))
    if criteria["budget_met"] and not cfg.training.budget:
        raise ValueError(f"{where}.flow.criteria.budget_met: the flow sets no training.budget "
                         "to meet")
    synth = flow.get("synth", "auto")
    if synth not in ("auto", "off", "required"):
        raise ValueError(f"{where}.flow.synth: invalid value {synth!r}; allowed: auto, off, "
                         "required")
    if csim["samples"] < 1:
        raise ValueError(f"{where}.csim.samples must be at least 1")
    _check_stages(where, board, export, csim, criteria)
    check_criteria(where, criteria, cfg.task)
    if cfg.out_dir is not None and Path(cfg.out_dir).exists() and not is_qfx_folder(cfg.out_dir):
        raise ValueError(f"{where}.out_dir: {cfg.out_dir} is not a flow output folder (no qfx "
                         "flow.json) and not empty; choose another folder")
    return FlowSpec(cfg, board, export, csim, criteria, synth,
                    str(extra.get("description", "")), ptq)


def _check_stages(where: str, board: str, export: dict[str, Any], csim: dict[str, Any],
                  criteria: dict[str, Any]) -> None:
    """Every later stage's settings, checked when the flow loads (before training starts):
    one line naming the flow file and the key."""
    from qfx.backends.hls.boards import load_board
    from qfx.backends.hls.export import BUDGET_POLICIES
    from qfx.backends.hls.tcl import clock_period_ns
    from qfx.backends.hls.writer import IO_MODES
    from qfx.ir.verify import check_identifier

    def check(key: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except (TypeError, ValueError, OSError) as err:
            raise ValueError(f"{where}.{key}: {str(err).splitlines()[0]}") from None

    check("board", lambda: load_board(board))
    if export["io"] not in IO_MODES:
        raise ValueError(f"{where}.export.io: invalid value {export['io']!r}; allowed: "
                         f"{', '.join(IO_MODES)}")
    if export["on_budget"] not in BUDGET_POLICIES:
        raise ValueError(f"{where}.export.on_budget: invalid value {export['on_budget']!r}; "
                         f"allowed: {', '.join(BUDGET_POLICIES)}")
    check("export.project_name", lambda: check_identifier(export["project_name"],
                                                          "project_name"))
    if export.get("clock_mhz") is not None:
        check("export.clock_mhz", lambda: clock_period_ns(export["clock_mhz"]))
    if csim["jobs"] is not None and csim["jobs"] < 1:
        raise ValueError(f"{where}.csim.jobs must be at least 1, got {csim['jobs']}")
    if not 0 < csim["timeout"] < float("inf"):
        raise ValueError(f"{where}.csim.timeout must be > 0 seconds, got {csim['timeout']}")


@dataclass
class StageResult:
    name: str
    status: str  # passed | failed | skipped
    seconds: float = 0.0
    message: str = ""


@dataclass
class Criterion:
    name: str
    passed: bool
    message: str


@dataclass
class FlowResult:
    """What :func:`run_flow` did: per-stage results, criteria, and where the outputs are."""

    name: str
    out_dir: Path
    stages: list[StageResult] = field(default_factory=list)
    criteria: list[Criterion] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    junit: Path | None = None

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.stages) and all(
            c.passed for c in self.criteria)

    @property
    def reason(self) -> str:
        """One line: why the flow failed (empty when it passed)."""
        for s in self.stages:
            if s.status == "failed":
                return f"stage {s.name} failed: {s.message}"
        for c in self.criteria:
            if not c.passed:
                return f"criterion {c.name} failed: {c.message}"
        return ""


class _Log:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(msg, file=sys.stderr, flush=True)


def _stage(result: FlowResult, name: str, log: _Log, fn: Callable[[], str]) -> bool:
    i = STAGES.index(name) + 1
    log(f"[{i}/{len(STAGES)}] {name} ...")
    t = time.perf_counter()
    try:
        message = fn() or ""
    except Exception as err:  # a stage failure is reported, not raised: the flow goes on
        msg = f"{type(err).__name__}: {err}".splitlines()[0]
        result.stages.append(StageResult(name, "failed", time.perf_counter() - t, msg))
        log(f"[{i}/{len(STAGES)}] {name} FAILED: {msg}")
        if _debug():
            log("".join(traceback.format_exception(err)))
        return False
    result.stages.append(StageResult(name, "passed", time.perf_counter() - t, message))
    log(f"[{i}/{len(STAGES)}] {name} done in {time.perf_counter() - t:.1f}s"
        + (f": {message}" if message else ""))
    return True


def _debug() -> bool:
    import os

    return bool(os.environ.get("QFX_DEBUG"))


def _skip(result: FlowResult, name: str, why: str, log: _Log) -> None:
    result.stages.append(StageResult(name, "skipped", 0.0, why))
    log(f"[{STAGES.index(name) + 1}/{len(STAGES)}] {name} skipped: {why}")


def run_flow(source: str | Path | dict[str, Any] | FlowSpec, *, out_dir: str | Path | None = None,
             junit: str | Path | None = None, skip: tuple[str, ...] = (), resume: bool = False,
             progress: bool = True, epochs: int | None = None,
             data_root: str | None = None) -> FlowResult:
    """Run a flow end to end and write ``report.md`` (and JUnit XML if asked).

    ``skip`` names stages not to run; ``resume`` reuses a finished training checkpoint in the
    output folder, or continues an interrupted one from the epochs it recorded, instead of
    training from scratch. Exceptions inside a stage are recorded as that
    stage's failure (and the stages that need it are skipped), so CI always gets a report.
    """
    from qfx.data import get_dataset
    from qfx.training.tasks import task_spec

    spec = source if isinstance(source, FlowSpec) else load_flow(source)
    unknown = [s for s in skip if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    if epochs is not None:
        spec.train.override_training(epochs=epochs)
    if data_root:
        spec.train.dataset_options["root"] = data_root
    out = Path(out_dir or spec.train.out_dir or Path("runs") / spec.name).resolve()
    if out.exists() and not is_qfx_folder(out):
        raise FileExistsError(f"{out} is not a flow output folder (no qfx flow.json) and not "
                              "empty; refusing to write into it: choose another output folder "
                              "(--out)")
    out.mkdir(parents=True, exist_ok=True)
    _mark_running(out, spec.name, Path(junit) if junit else None)
    spec.train.out_dir = out / "train"
    log = _Log(progress)
    result = FlowResult(spec.name, out)
    state: dict[str, Any] = {}
    split = get_dataset(spec.train.dataset, **spec.train.dataset_options)
    test_x, test_y = split.test.tensors[0], split.test.tensors[1]
    task = task_spec(spec.task)
    if task.frozen_metrics:
        log(f"task {task.name} on dataset {spec.train.dataset} ({len(split.train)} training, "
            f"{len(test_x)} held-out samples)")

    def ptq() -> str:
        from qfx.flows.ptq_stage import run_ptq_stage

        res = run_ptq_stage(spec.ptq, spec.train, split, out, progress=progress)
        state["model"] = res.model
        state["ptq_report"] = res.report
        result.metrics.update(test_accuracy=res.ptq_accuracy, ptq_accuracy=res.ptq_accuracy,
                              float_accuracy=res.float_accuracy, ptq_calibration=res.calib_kind)
        return (f"HPTQ on {res.calib_kind} calibration data: test accuracy "
                f"{res.ptq_accuracy:.4f} (float {res.float_accuracy:.4f}); report {res.report}")

    def finetune() -> str:
        from qfx.training.trainer import train as train_model

        t = spec.train.training
        res = train_model(state["model"], split.train, split.test,
                          epochs=spec.ptq["finetune_epochs"], batch_size=t.batch_size,
                          lr=t.lr, optimizer=t.optimizer, schedule=t.schedule,
                          weight_decay=t.weight_decay, momentum=t.momentum, device=t.device,
                          out_dir=spec.train.out_dir, seed=t.seed, progress=progress,
                          augment=t.augment)
        state["model"] = res.model
        state["history"] = res.history
        state["history_plot"] = res.plot
        result.metrics["test_accuracy"] = res.final_test_acc
        return (f"QFX fine-tuning from the PTQ start: test accuracy {res.final_test_acc:.4f} "
                f"(PTQ {result.metrics['ptq_accuracy']:.4f})")

    def train() -> str:
        from qfx.training.config import restore_model, run_training

        ckpt = spec.train.out_dir / "checkpoint.npz"
        resume_from, note = None, ""
        if resume and ckpt.is_file():
            model, side = restore_model(ckpt)
            done, planned = int(side["epoch"] or 0), spec.train.training.epochs
            if done >= planned:  # a finished training: reuse it
                hist = side["history"]
                state["model"] = model
                state["history"] = hist
                state["history_plot"] = spec.train.out_dir / "training.png"
                last = hist[-1] if hist else {"test_acc": float("nan"), "test_loss": float("nan")}
                return f"resumed from {ckpt}: {_trained(result, last, spec.train.training.loss)}"
            # an interrupted training: continue it from the epochs it recorded
            resume_from, note = ckpt, f"continued from epoch {done}/{planned} of {ckpt}: "
        res = run_training(spec.train, progress=progress, resume_from=resume_from,
                           measure=budget_measure(spec))
        if not res.metadata.get("quantized"):
            raise RuntimeError("the model was trained without quantization")
        state["model"] = res.model
        state["history"] = res.history
        state["history_plot"] = res.plot
        return f"{note}{_trained(result, res.history[-1], spec.train.training.loss)}"

    def freeze() -> str:
        from qfx.frontends.pytorch import freeze as do_freeze
        from qfx.ir.report import OutputSaturation, OverflowReport, run_batches
        from qfx.ir.serialize import save_graph

        graph = do_freeze(state["model"].cpu().eval(), test_x[:1])
        save_graph(graph, out / "model.qfx.npz")
        state["graph"] = graph
        # one exact run over the held-out split feeds every report of the frozen model
        report = OverflowReport(graph)
        sat = OutputSaturation.of(graph)  # the first output: clipped values, argmax ties
        out_type, outputs = graph.edges[graph.outputs[0]].type, []
        for res in run_batches(graph, test_x):
            report.add(res)
            sat.add(res, out_type)
            outputs.append(res.outputs[0])
        state["overflow"] = str(report)
        worst = report.worst()
        result.metrics["worst_overflow"] = {"node": worst[0], "rate": worst[1]} if worst else None
        state["saturation"] = str(sat)
        result.metrics["output_saturation"] = vars(sat)
        note = ""
        if task.frozen_metrics:  # the task's measures of the frozen (exact) model's outputs
            scores = task.metrics(np.concatenate(outputs), np.asarray(test_x, dtype=np.float64),
                                  np.asarray(test_y))
            result.metrics.update(scores)
            note = f"; {task.name} on the held-out split: {_metrics_text(scores)}"
        return f"{len(graph.nodes)} nodes -> {out / 'model.qfx.npz'}{note}"

    def export() -> str:
        from qfx.backends.hls.export import export_hls

        n = min(spec.csim["samples"], len(test_x))
        e = spec.export
        project = export_hls(state["graph"], out_dir=out / "hls", board=spec.board, io=e["io"],
                             reuse=e["reuse"], clock_mhz=e.get("clock_mhz"), force=True,
                             test_vectors=test_x[:n].numpy(), project_name=e["project_name"],
                             on_budget=e["on_budget"], budget=_fold_budget(spec),
                             target_fps=e.get("target_fps"),
                             target_latency_us=e.get("target_latency_us"))
        state["project"] = project
        rep = project.report
        result.metrics["fits_board"] = rep.fits
        result.metrics["estimate"] = rep.total.as_dict()
        return f"project at {project.root}"

    def csim() -> str:
        from qfx.csim import csim as run_csim

        n = min(spec.csim["samples"], len(test_x))
        rep = run_csim(state["project"], test_x[:n], jobs=spec.csim.get("jobs"),
                       timeout=float(spec.csim["timeout"]),
                       arith=spec.csim.get("arith", "both"),
                       synth_samples=spec.csim.get("synth_samples"))
        state["csim"] = rep
        graph = state["graph"]
        out_e = graph.edges[graph.outputs[0]]
        hw_out = out_e.type.from_int(np.asarray(rep.outputs).reshape(n, *out_e.shape))
        hw = task.metrics(hw_out, test_x[:n].numpy(), test_y[:n].numpy())
        mismatches = int(rep.mismatches) + (int(rep.synth.mismatches) if rep.synth else 0)
        result.metrics.update({f"hw_{k}": v for k, v in hw.items()})
        result.metrics.update(bit_exact=bool(rep.bit_exact), csim_samples=n,
                              csim_mismatches=mismatches,
                              csim_samples_per_second=float(rep.samples_per_second),
                              csim_proofs=rep.proofs, csim_proven=rep.proven)
        return rep.summary()

    def synth() -> str:
        tool = shutil.which("vitis_hls") or shutil.which("vivado_hls")
        if tool is None:
            raise FileNotFoundError("vitis_hls/vivado_hls not on PATH")
        proc = subprocess.run([tool, "-f", "build_prj.tcl", "-tclargs", "csim=0", "synth=1",
                               "cosim=0", "export=1"], cwd=state["project"].root,
                              capture_output=True, text=True, timeout=6 * 3600)
        (out / "synth.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode:
            raise RuntimeError(f"{Path(tool).name} exited {proc.returncode}; see {out}/synth.log")
        from qfx.backends.hls.synth_report import find_csynth_report, read_csynth_xml

        project = state["project"]
        path = find_csynth_report(project.root, project.project_name, project.axis_top)
        if path is None:
            raise FileNotFoundError(f"{Path(tool).name} finished but wrote no "
                                    f"{project.axis_top}_csynth.xml; see {out}/synth.log")
        synth = read_csynth_xml(path)
        state["synth"] = synth
        result.metrics["synthesis"] = synth.as_dict()
        r = synth.resources
        return (f"{Path(tool).name}: DSP {r.dsp}, LUT {r.lut}, FF {r.ff}, BRAM18K {r.bram18k}, "
                f"latency {synth.latency_worst} cycles")

    # a PTQ flow: the model comes from the ptq stage, `train` fine-tunes it (when asked)
    needs = {"freeze": "train", "export": "freeze", "csim": "export", "synth": "export"}
    stages = (("train", train), ("freeze", freeze), ("export", export), ("csim", csim),
              ("synth", synth))
    if spec.ptq is not None:
        stages = (("ptq", ptq), ("train", finetune), *stages[1:])
        needs.update(train="ptq", freeze="train" if spec.ptq["finetune_epochs"] else "ptq")
    done: set[str] = set()
    for name, fn in stages:
        if name in skip:
            _skip(result, name, "skipped on request", log)
            continue
        if name == "train" and spec.ptq is not None and not spec.ptq["finetune_epochs"]:
            _skip(result, name, "PTQ only (ptq.finetune_epochs is 0)", log)
            continue
        if name in needs and needs[name] not in done:
            _skip(result, name, f"needs {needs[name]}", log)
            continue
        if name == "synth" and (spec.synth == "off" or (
                spec.synth == "auto" and not (shutil.which("vitis_hls")
                                              or shutil.which("vivado_hls")))):
            _skip(result, name, "vitis_hls/vivado_hls not on PATH (synthesis needs the AMD "
                  "tools; C-simulation already proved the C++)" if spec.synth == "auto"
                  else "off in the flow", log)
            continue
        if _stage(result, name, log, fn):
            done.add(name)

    _judge(spec, result)
    result.report = _write_report(spec, result, state)
    if junit:
        result.junit = _write_junit(result, Path(junit))
    atomic_write_text(out / "flow.json",
                      json.dumps(_summary(result), indent=2, default=str) + "\n")
    return result


STALE_BANNER = ("> **STALE**: a later run of this flow started and did not finish (interrupted "
                "or crashed); the result below is from an earlier run and is no longer valid.")


def budget_measure(spec: FlowSpec) -> Callable[[Any, Any], Any] | None:
    """The controller's measurement of a budgeted training: the export estimate of the frozen
    model, per layer, on the flow's board, architecture and reuse (with ``reuse: auto``, the
    most folded design, which the export's search unfolds only as far as the budget allows:
    see :func:`_fold_budget`), so that the budget the training reaches is the one
    ``budget_met`` checks.
    None without a budget. ``qfx flow run`` and ``qfx train`` both train with it.

    Example:
        >>> from qfx.package_data import resource_dir
        >>> spec = load_flow(resource_dir("flows") / "digits-lut-budget-ultra96.yaml")
        >>> budget_measure(spec)
        EstimateMeasure(board='ultra96', reuse=16, io='parallel', ebops=False)
    """
    if not spec.train.training.budget:
        return None
    from qfx.flows.measure import estimate_measure

    return estimate_measure(board=spec.board, reuse=spec.export["reuse"], io=spec.export["io"])


def _fold_budget(spec: FlowSpec) -> float:
    """The share of the board ``reuse: auto`` may fill: the export's ``budget``, and with a
    training budget no more than that allows (one share for every resource: a LUT + 55 DSP
    budget is a share of the board's), so that ``budget_met`` holds for the design the search
    picks as it does for the most folded one the training measured."""
    from qfx.flows.measure import reuse_is_searched

    share = float(spec.export.get("budget", 1.0))
    if not (spec.train.training.budget and reuse_is_searched(spec.export["reuse"])):
        return share
    from qfx.backends.hls.boards import load_board
    from qfx.training.budget import lut_equiv
    from qfx.training.config import resolve_budget

    r = load_board(spec.board).resources
    board = {"lut": r.lut, "ff": r.ff, "dsp": r.dsp, "lut_equiv": lut_equiv(r.lut, r.dsp)}
    for k, v in resolve_budget(spec.train.training.budget).items():
        if board.get(k):
            share = min(share, v / board[k])
    return share


def _mark_running(out: Path, name: str, junit: Path | None) -> None:
    """Before any stage runs: ``flow.json`` says "running" (not ok), an old ``report.md`` loses
    its PASS and an old JUnit file of this flow is removed, so an interrupted run never leaves
    the previous run's PASS behind. The finished run overwrites all three."""
    previous = None
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads((out / "flow.json").read_text(encoding="utf-8"))
    atomic_write_text(out / "flow.json", json.dumps(
        {"format": FLOW_FORMAT, "name": name, "ok": False, "status": "running",
         "reason": "the run has not finished (running, interrupted or crashed)",
         "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "stages": [], "criteria": [],
         "previous": previous}, indent=2, default=str) + "\n")
    report = out / "report.md"
    if report.is_file():
        text = report.read_text(encoding="utf-8")
        if not text.startswith("> **STALE**"):
            text = text.replace("**Result: PASS**", "**Result: STALE** (was PASS)")
            atomic_write_text(report, f"{STALE_BANNER}\n\n{text}")
    if junit is not None and junit.is_file():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if f'name="qfx-flow.{name}"' in junit.read_text(encoding="utf-8"):
                junit.unlink()


def _judge(spec: FlowSpec, result: FlowResult) -> None:
    ran = {s.name for s in result.stages if s.status == "passed"}
    if spec.train.training.budget:  # what budget_met holds the export estimate to
        from qfx.training.config import resolve_budget

        result.metrics["training_budget"] = resolve_budget(spec.train.training.budget)
    result.criteria += [Criterion(*c) for c in judge_criteria(spec.criteria, result.metrics, ran)]


def _trained(result: FlowResult, last: dict[str, Any], loss: str) -> str:
    """Record the last epoch's exact test accuracy (or, for a loss without accuracy such as
    reconstruction_mse, its test loss) in the metrics; returns the stage's note."""
    if np.isnan(last["test_acc"]):
        result.metrics["test_loss"] = last["test_loss"]
        return f"test loss ({loss}) {last['test_loss']:.4g} (exact fixed-point eval)"
    result.metrics["test_accuracy"] = last["test_acc"]
    return f"test accuracy {last['test_acc']:.4f} (exact fixed-point eval)"


def _metrics_text(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def _summary(result: FlowResult) -> dict[str, Any]:
    return {"format": FLOW_FORMAT, "status": "finished", "name": result.name, "ok": result.ok,
            "reason": result.reason,
            "stages": [vars(s) for s in result.stages],
            "criteria": [vars(c) for c in result.criteria], "metrics": result.metrics}


def _budget_lines(history: list[dict[str, Any]]) -> list[str]:
    """The report's account of a training to a resource budget (none without one): the
    budget and the final estimate, what the guarantee step pruned and coarsened at what loss,
    and which epoch the settle phase ended on."""
    last = history[-1] if history else {}
    g = last.get("budget_guarantee")
    if not g:
        return []

    def figures(d: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v:,.0f}" for k, v in d.items())

    coarsened, pruned = g.get("coarsened") or [], g.get("pruned") or []
    kept = last.get("settle_best_epoch")
    return ["", "## Training to a resource budget", "",
            f"- budget {figures(last.get('budget', {}))}; the final model's estimate "
            f"{figures(last.get('resources', {}))}",
            f"- guarantee step (the settle phase's start and training's end): estimate "
            f"{figures(g.get('before', {}))} -> {figures(g.get('after', {}))}; "
            f"{len(pruned)} channel(s) pruned, {len(coarsened)} one-bit coarsening(s)"
            + (f" ({', '.join(f'{n} x{c}' if c > 1 else n for n, c in Counter(coarsened).items())})"
               if coarsened else "")
            + f"; training loss {g.get('loss_before', float('nan')):.4f} -> "
            f"{g.get('loss_after', float('nan')):.4f}",
            "- the settle phase ended on "
            + (f"the model after epoch {kept} (the best on the training samples among "
               f"those that fit)" if kept else f"its last epoch ({last.get('epoch')})")]


def _write_report(spec: FlowSpec, result: FlowResult, state: dict[str, Any]) -> Path:
    out = result.out_dir
    lines = [f"# qfx flow `{spec.name}`", ""]
    if spec.description:
        lines += [spec.description, ""]
    lines += [f"**Result: {'PASS' if result.ok else 'FAIL'}**"
              + (f" — {result.reason}" if not result.ok else ""), "",
              "| stage | status | seconds | note |", "| --- | --- | ---: | --- |"]
    lines += [f"| {s.name} | {s.status} | {s.seconds:.1f} | {s.message} |" for s in result.stages]
    lines += ["", "| criterion | result | detail |", "| --- | --- | --- |"]
    lines += [f"| {c.name} | {'pass' if c.passed else 'FAIL'} | {c.message} |"
              for c in result.criteria]
    ptq_md = state.get("ptq_report")
    if ptq_md is not None and Path(ptq_md).is_file():  # demote its headings under this one
        body = [("#" + ln if ln.startswith("#") else ln)
                for ln in Path(ptq_md).read_text(encoding="utf-8").splitlines()]
        lines += ["", "## Post-training quantisation (the start of this flow)", "", *body]
    plot = state.get("history_plot")
    if plot and Path(plot).is_file():
        rel = Path(plot).relative_to(out) if Path(plot).is_relative_to(out) else plot
        lines += ["", "## Training: accuracy, loss and learned formats", "",
                  f"![training]({rel})"]
    lines += _budget_lines(state.get("history") or [])
    graph = state.get("graph")
    if graph is not None:
        lines += ["", "## Frozen model (every edge's fixed-point format)", "", "```",
                  graph.summary(), "```", "", "## Overflow on the test set", "", "```",
                  state.get("overflow", ""), "```"]
        if state.get("saturation"):
            lines += ["", f"Output saturation on the test set: {state['saturation']}."]
    project = state.get("project")
    if project is not None:
        lines += ["", "## HLS export (resource figures are estimates, not synthesis results)",
                  "", f"Project: `{project.root}` — see its `report.md`."]
        png = Path(project.root) / "report.png"
        if png.is_file():
            lines += ["", f"![resources]({png.relative_to(out)})"]
    rep = state.get("csim")
    if rep is not None:
        lines += ["", "## C-simulation", "", "```", str(rep), "```"]
    synth = state.get("synth")
    if synth is not None and project is not None:
        from qfx.backends.hls.synth_report import compare_markdown

        lines += ["", f"## HLS synthesis ({synth.source.name}) beside the estimate", "",
                  compare_markdown(project.report.total, synth)]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _write_junit(result: FlowResult, path: Path) -> Path:
    cases = [(f"stage.{s.name}", s.seconds, s.status, s.message) for s in result.stages]
    cases += [(f"criterion.{c.name}", 0.0, "passed" if c.passed else "failed", c.message)
              for c in result.criteria]
    # one case per arithmetic path the C-simulation proved (or failed), with its sample count
    cases += [(f"csim.{p['arith']}", 0.0, "passed" if p["bit_exact"] else "failed",
               f"{proofs_text([p])}: {p['mismatches']} mismatching output values")
              for p in result.metrics.get("csim_proofs") or []]
    suite = ET.Element("testsuite", name=f"qfx-flow.{result.name}", tests=str(len(cases)),
                       failures=str(sum(1 for c in cases if c[2] == "failed")),
                       skipped=str(sum(1 for c in cases if c[2] == "skipped")),
                       time=f"{sum(c[1] for c in cases):.3f}")
    for name, seconds, status, message in cases:
        case = ET.SubElement(suite, "testcase", classname=f"qfx.flow.{result.name}", name=name,
                             time=f"{seconds:.3f}")
        if status == "failed":
            ET.SubElement(case, "failure", message=message).text = message
        elif status == "skipped":
            ET.SubElement(case, "skipped", message=message)
    root = ET.Element("testsuites")
    root.append(suite)
    with atomic_open(path, "wb") as f:
        ET.ElementTree(root).write(f, encoding="utf-8", xml_declaration=True)
    return path
