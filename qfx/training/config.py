"""The YAML training config read by ``qfx train FLOW.yaml``, and the run it describes.

A minimal config::

    dataset: digits                 # or {name: cifar10, root: data/cifar-10-batches-py}
    model: digits_cnn               # or {name: resnet8, num_classes: 10}
    task: classification            # optional: or segmentation, reconstruction (see
                                    # qfx.training.tasks): picks training.loss's default
    training: {epochs: 20, batch_size: 64, lr: 0.01}
    out_dir: runs/digits            # relative paths are relative to the working directory
    quantization: {...}             # optional, handed to qfx.quantize_model unchanged; not
                                    # allowed for zoo models built from qfx layers (kind "qfx",
                                    # e.g. digits_bnn): they are quantized already
"""

from __future__ import annotations

import inspect
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import yaml

from qfx.data.augment import AUGMENTATIONS
from qfx.data.registry import dataset_names, dataset_options, get_dataset
from qfx.training import distributed as qdist
from qfx.training.checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from qfx.training.tasks import TASKS
from qfx.training.trainer import (
    CHECKPOINT_NAME,
    LOSSES,
    OPTIMIZERS,
    PLOT_NAME,
    SCHEDULES,
    TrainResult,
    train,
)
from qfx.zoo.registry import get_model, model_names, model_spec

__all__ = [
    "ConfigError", "TrainingOptions", "TrainConfig", "load_train_config", "parse_train_config",
    "run_training", "restore_model", "resolve_budget", "TOP_LEVEL_KEYS", "FLOW_SECTIONS",
    "CALIBRATION_SAMPLES",
]

TOP_LEVEL_KEYS = ("name", "dataset", "model", "training", "quantization", "out_dir", "task")
# Sections of a flow YAML that other qfx steps read; ``qfx train`` keeps them untouched.
FLOW_SECTIONS = ("export", "csim", "report", "board", "hls", "onnx", "flow", "steps",
                 "description", "benchmark", "ptq")
# Training inputs handed to qfx.quantize_model for calibrating the binary points.
CALIBRATION_SAMPLES = 512


class ConfigError(ValueError):
    """A training config with a bad key or value (the message names both)."""


@dataclass
class TrainingOptions:
    """The ``training:`` section: keyword arguments of :func:`qfx.training.train`.

    Example:
        >>> TrainingOptions(epochs=5).optimizer
        'adam'
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    schedule: str = "cosine"
    weight_decay: float = 0.0
    momentum: float = 0.9
    device: str = "cpu"
    seed: int = 0
    checkpoint_every: int = 1
    augment: str = "none"
    nproc: int = 1  # data-parallel processes (DistributedDataParallel); batch_size is per process
    # Resource budget of a learned-width model (quantization: {learn_widths: true}): absolute
    # numbers per resource (lut, dsp, ff, ebops), or fractions of a board's with ``board``;
    # reached by qfx.training.budget's controller. None: no budget.
    budget: dict[str, Any] | None = None
    # The training loss (qfx.training.trainer.LOSSES); the config's task picks the default.
    loss: str = "cross_entropy"


@dataclass
class TrainConfig:
    """A parsed, validated training config.

    Example:
        >>> cfg = parse_train_config({"dataset": "digits", "model": "digits_cnn"})
        >>> cfg.training.epochs, cfg.quantization
        (10, None)
    """

    name: str
    dataset: str
    dataset_options: dict[str, Any]
    model: str
    model_options: dict[str, Any]
    training: TrainingOptions = field(default_factory=TrainingOptions)
    quantization: dict[str, Any] | None = None
    out_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    task: str = "classification"  # qfx.training.tasks.TASKS

    def override_training(self, **values: Any) -> None:
        """Replace training options (e.g. from the command line), validated like the YAML.

        Example:
            >>> cfg = parse_train_config({"dataset": "digits", "model": "digits_cnn"})
            >>> cfg.override_training(epochs=3)
            >>> cfg.training.epochs
            3
        """
        self.training = _training({**asdict(self.training), **values}, "command line: ")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in checkpoint sidecars)."""
        return {
            "name": self.name,
            "dataset": {"name": self.dataset, **_jsonable(self.dataset_options)},
            "model": {"name": self.model, **_jsonable(self.model_options)},
            "training": asdict(self.training),
            "quantization": _jsonable(self.quantization),
            "out_dir": None if self.out_dir is None else str(self.out_dir),
            "task": self.task,
            **_jsonable(self.extra),
        }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def _where(source: Path | None) -> str:
    return f"{source}: " if source is not None else ""


def _named_section(raw: Any, key: str, names: tuple[str, ...], where: str
                   ) -> tuple[str, dict[str, Any]]:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}{key} must be a name or a mapping with 'name', got {raw!r}")
    options = dict(raw)
    name = options.pop("name", None)
    if name is None:
        raise ConfigError(f"{where}{key}.name is missing; allowed: {', '.join(names)}")
    if name not in names:
        raise ConfigError(f"{where}{key}.name: unknown {key} {name!r}; allowed: "
                          f"{', '.join(names)}")
    bad = [k for k in options if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{where}{key}: option names must be strings, got {bad[0]!r}")
    return name, options


def _number(section: str, key: str, value: Any, kind: type, where: str,
            check: Callable[[float], bool], what: str) -> Any:
    # PyYAML reads "1e-3" (no dot) as a string: accept numeric strings for float fields.
    if kind is float and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    ok = (isinstance(value, kind) or (kind is float and isinstance(value, int))) \
        and not isinstance(value, bool)
    if not ok or not check(value) or (kind is float and not math.isfinite(value)):
        raise ConfigError(f"{where}{section}.{key} must be {what}, got {value!r}")
    return kind(value)


def _training(raw: Any, where: str) -> TrainingOptions:
    if raw is None:
        return TrainingOptions()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}training must be a mapping, got {raw!r}")
    allowed = [f.name for f in fields(TrainingOptions)]
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}training: unknown key {unknown[0]!r}; allowed: "
                          f"{', '.join(allowed)}")
    opts = TrainingOptions()
    s = "training"
    ints = {"epochs": 1, "batch_size": 1, "checkpoint_every": 1, "nproc": 1}
    for key, low in ints.items():
        if key in raw:
            setattr(opts, key, _number(s, key, raw[key], int, where, lambda v, lo=low: v >= lo,
                                       f"an integer >= {low}"))
    if "seed" in raw:
        opts.seed = _number(s, "seed", raw["seed"], int, where, lambda v: 0 <= v < 1 << 63,
                            "an integer in [0, 2**63)")
    if "lr" in raw:
        opts.lr = _number(s, "lr", raw["lr"], float, where, lambda v: v > 0, "a positive number")
    if "weight_decay" in raw:
        opts.weight_decay = _number(s, "weight_decay", raw["weight_decay"], float, where,
                                    lambda v: v >= 0, "a number >= 0")
    if "momentum" in raw:
        opts.momentum = _number(s, "momentum", raw["momentum"], float, where,
                                lambda v: 0 <= v < 1, "a number in [0, 1)")
    for key, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                         ("augment", tuple(AUGMENTATIONS)), ("loss", tuple(LOSSES))):
        if key in raw:
            value = "none" if key == "augment" and raw[key] is None else raw[key]
            if value not in choices:
                raise ConfigError(f"{where}training.{key}: invalid value {raw[key]!r}; "
                                  f"allowed: {', '.join(choices)}")
            setattr(opts, key, value)
    if "device" in raw:
        opts.device = _device_name(raw["device"], where)
    if raw.get("budget") is not None:
        opts.budget = _budget(raw["budget"], where)
    return opts


def _budget(raw: Any, where: str) -> dict[str, Any]:
    """Validate ``training.budget``: ``{board: NAME, lut: 0.6, dsp: 0.5}`` (fractions of the
    board's resources; ``ebops`` always absolute) or absolute numbers without ``board``."""
    resolve_budget(raw, where)
    return dict(raw)


def resolve_budget(raw: Any, where: str = "") -> dict[str, float]:
    """The absolute resource numbers of a ``training.budget`` mapping.

    Example:
        >>> resolve_budget({"board": "ultra96", "dsp": 0.5})
        {'dsp': 180.0}
    """
    from qfx.training.budget import RESOURCES

    key = "training.budget"
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{where}{key} must be a mapping of resources, got {raw!r}")
    allowed = ("board", *RESOURCES)
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}{key}: unknown key {unknown[0]!r}; allowed: "
                          f"{', '.join(allowed)}")
    board = raw.get("board")
    totals = _board_resources(board, where) if board is not None else None
    out: dict[str, float] = {}
    for k in RESOURCES:
        if k not in raw:
            continue
        v = _number(key, k, raw[k], float, where, lambda v: v > 0, "a positive number")
        if totals is not None and k != "ebops":
            if v > 1:
                raise ConfigError(f"{where}{key}.{k}: {v} is not a fraction of the board's "
                                  f"resources (give a number in (0, 1], or drop board)")
            v *= totals[k]
        out[k] = v
    if not out:
        raise ConfigError(f"{where}{key} names no resource; allowed: {', '.join(RESOURCES)}")
    return out


def _board_resources(name: Any, where: str) -> dict[str, float]:
    """LUT / FF / DSP (and LUT + 55 x DSP) of a shipped board (boards/*.yaml, by name or
    alias)."""
    import yaml

    from qfx.package_data import resource_dir

    for path in sorted(resource_dir("boards").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        names = [data.get("name", ""), *data.get("aliases", [])]
        if str(name).lower() in [str(n).lower() for n in names]:
            res = data["resources"]
            from qfx.training.budget import lut_equiv

            return {"lut": float(res["lut"]), "ff": float(res["ff"]), "dsp": float(res["dsp"]),
                    "lut_equiv": float(lut_equiv(res["lut"], res["dsp"]))}
    raise ConfigError(f"{where}training.budget.board: unknown board {name!r}")


def _device_name(value: Any, where: str) -> str:
    try:
        torch.device(value)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{where}training.device: invalid device {value!r}; use e.g. cpu, "
                          f"cuda, cuda:1, mps") from None
    return str(value)


def parse_train_config(
    raw: Any,
    *,
    source: str | Path | None = None,
    extra_sections: Iterable[str] = FLOW_SECTIONS,
) -> TrainConfig:
    """Validate a config mapping (as from ``yaml.safe_load``) into a :class:`TrainConfig`.

    Unknown keys and bad values raise :class:`ConfigError` naming the key and what is allowed.
    Sections in ``extra_sections`` (other flow steps) are kept verbatim in ``.extra``.

    Example:
        >>> cfg = parse_train_config({"dataset": {"name": "digits", "seed": 1},
        ...                           "model": "digits_cnn", "training": {"lr": "1e-3"}})
        >>> cfg.dataset_options, cfg.training.lr
        ({'seed': 1}, 0.001)
    """
    src = Path(source) if source is not None else None
    where = _where(src)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}a training config must be a YAML mapping, got "
                          f"{type(raw).__name__}")
    extra_sections = tuple(extra_sections)
    allowed = TOP_LEVEL_KEYS + extra_sections
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}unknown top-level key {unknown[0]!r}; allowed: "
                          f"{', '.join(allowed)}")
    for key in ("dataset", "model"):
        if key not in raw:
            raise ConfigError(f"{where}missing required key {key!r}")
    dataset, ds_opts = _named_section(raw["dataset"], "dataset", dataset_names(), where)
    ds_allowed = dataset_options(dataset)
    for k in ds_opts:
        if k not in ds_allowed:
            raise ConfigError(f"{where}dataset: unknown option {k!r} for {dataset!r}; "
                              f"allowed: {', '.join(ds_allowed)}")
    for k, default in ds_allowed.items():
        if default is inspect.Parameter.empty and k not in ds_opts:
            raise ConfigError(f"{where}dataset: {dataset!r} needs option {k!r}")
    model, m_opts = _named_section(raw["model"], "model", model_names(), where)
    m_allowed = inspect.signature(model_spec(model).builder).parameters
    for k in m_opts:
        if k not in m_allowed:
            raise ConfigError(f"{where}model: unknown option {k!r} for {model!r}; allowed: "
                              f"{', '.join(m_allowed) or '(none)'}")
    quant = raw.get("quantization")
    if quant is not None and not isinstance(quant, Mapping):
        raise ConfigError(f"{where}quantization must be a mapping, got {quant!r}")
    out_dir = raw.get("out_dir")
    if out_dir is not None and not isinstance(out_dir, str):
        raise ConfigError(f"{where}out_dir must be a path string, got {out_dir!r}")
    name = raw.get("name") or (src.stem if src is not None else model)
    if not isinstance(name, str):
        raise ConfigError(f"{where}name must be a string, got {name!r}")
    task = _task(raw, where)
    training = _training(raw.get("training"), where)
    if "loss" not in (raw.get("training") or {}):
        training.loss = TASKS[task].losses[0]
    elif training.loss not in TASKS[task].losses:
        raise ConfigError(f"{where}training.loss: {training.loss!r} does not train task "
                          f"{task!r}; allowed: {', '.join(TASKS[task].losses)}")
    _check_budget_widths(training, quant, where)  # before any data or model is loaded
    return TrainConfig(
        name=name, dataset=dataset, dataset_options=ds_opts, model=model, model_options=m_opts,
        training=training, task=task,
        quantization=None if quant is None else dict(quant),
        out_dir=None if out_dir is None else Path(out_dir).expanduser(),
        extra={k: raw[k] for k in extra_sections if k in raw}, source=src,
    )


def _check_budget_widths(training: TrainingOptions, quant: Mapping[str, Any] | None,
                         where: str) -> None:
    if training.budget and not (quant or {}).get("learn_widths"):
        raise ConfigError(f"{where}training.budget needs learned widths: set quantization."
                          f"learn_widths: true")


def _task(raw: Mapping[str, Any], where: str) -> str:
    task = raw.get("task", "classification")
    if not isinstance(task, str) or task not in TASKS:
        raise ConfigError(f"{where}task: invalid value {task!r}; allowed: {', '.join(TASKS)}")
    return task


def load_train_config(path: str | Path, **kwargs: Any) -> TrainConfig:
    """Read and validate a YAML training config (``yaml.safe_load``).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "flow.yaml"
        >>> _ = path.write_text("dataset: digits\\nmodel: digits_cnn\\ntraining: {epochs: 3}\\n")
        >>> cfg = load_train_config(path)
        >>> cfg.model, cfg.training.epochs, cfg.name
        ('digits_cnn', 3, 'flow')
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(err).split())}") from None
    return parse_train_config(raw, source=path, **kwargs)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _build_model(config: TrainConfig, log: Callable[[str], None]
                 ) -> tuple[torch.nn.Module, dict[str, Any], Any, bool]:
    """(model, model kwargs, dataset split, quantized?) exactly as ``run_training`` builds them."""
    import qfx.nn as qnn  # quantize_model is looked up when it runs

    ds_opts = dict(config.dataset_options)
    if "root" in ds_opts:
        ds_opts["root"] = str(Path(str(ds_opts["root"])).expanduser())
    if "shape" in ds_opts and isinstance(ds_opts["shape"], list):
        ds_opts["shape"] = tuple(ds_opts["shape"])
    split = get_dataset(config.dataset, **ds_opts)
    spec = model_spec(config.model)
    m_opts = dict(config.model_options)
    if "num_classes" in inspect.signature(spec.builder).parameters:
        m_opts.setdefault("num_classes", split.num_classes)
    if tuple(split.input_shape) != tuple(spec.input_shape):
        raise ConfigError(f"{_where(config.source)}model {config.model!r} expects inputs "
                          f"{spec.input_shape} but dataset {config.dataset!r} gives "
                          f"{split.input_shape}")
    torch.manual_seed(config.training.seed)  # model initialisation is part of the run
    model = get_model(config.model, **m_opts)
    quantized = False
    if spec.kind == "qfx":  # built from qfx layers: already quantized, trained and frozen as is
        if config.quantization is not None:
            raise ConfigError(f"{_where(config.source)}model {config.model!r} is built from qfx "
                              "layers (already quantized): remove the `quantization:` section")
        quantized = True
    elif config.quantization is not None:
        if hasattr(qnn, "quantize_model"):
            calib = split.train.tensors[0][:CALIBRATION_SAMPLES]
            model = qnn.quantize_model(model, config.quantization, calib)
            quantized = True
        else:
            log("qfx.quantize_model is not available in this qfx: training the float model "
                "(the quantization section is ignored)")
    return model, m_opts, split, quantized


def run_training(
    config: TrainConfig,
    *,
    progress: bool = True,
    resume_from: str | Path | None = None,
    log: Callable[[str], None] = _log,
    measure: Callable[[Any, Any], Mapping[str, float]] | None = None,
) -> TrainResult:
    """Build the dataset and model of ``config``, quantize it if the config has a
    ``quantization`` section and ``qfx.quantize_model`` exists, and train it. A zoo model of kind
    ``"qfx"`` (built from qfx layers, e.g. ``digits_bnn``) is trained as is and recorded as
    quantized (``metadata["quantized"] is True``); it takes no ``quantization`` section.

    ``qfx.quantize_model(model, config.quantization, calibration_data)`` receives the first
    ``CALIBRATION_SAMPLES`` training inputs as one CPU tensor.

    With ``training.budget`` the model must learn its widths (``quantization: {learn_widths:
    true}``); it is trained with :class:`qfx.training.budget.BudgetRegularizer`, whose controller
    ``measure(model, example_input)`` (e.g. the flow's export estimate) recalibrates each epoch.

    Example:
        >>> cfg = parse_train_config({"dataset": {"name": "synthetic", "n": 64},
        ...                           "model": "digits_cnn", "training": {"epochs": 1}})
        >>> result = run_training(cfg, progress=False)
        >>> len(result.history), result.metadata["model_kwargs"], result.metadata["quantized"]
        (1, {'num_classes': 4}, False)
    """
    t = config.training
    torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if t.nproc > 1 and not torchrun and not qdist.is_distributed():
        return _launch_training(config, progress=progress, resume_from=resume_from, log=log,
                                measure=measure)
    if torchrun:  # started by torchrun (or by _launch_training): join the process group
        device = qdist.init_from_env(t.device)
        if device != t.device:
            config.override_training(device=device)
            t = config.training
    model, m_opts, split, quantized = _build_model(config, log)
    metadata = {"name": config.name, "model": config.model, "model_kwargs": _jsonable(m_opts),
                "dataset": config.dataset, "input_shape": list(split.input_shape),
                "num_classes": split.num_classes, "quantized": quantized,
                "config": config.to_dict()}
    regularizer = None
    if t.budget:
        from qfx.training.budget import BudgetRegularizer

        _check_budget_widths(t, config.quantization, _where(config.source))
        example = split.train[0][0].unsqueeze(0)
        budget = resolve_budget(t.budget)
        regularizer = BudgetRegularizer(
            model, example, budget,
            measure=None if measure is None else (lambda m: measure(m, example)))
    return train(
        model, split.train, split.test, epochs=t.epochs, batch_size=t.batch_size, lr=t.lr,
        optimizer=t.optimizer, schedule=t.schedule, weight_decay=t.weight_decay,
        momentum=t.momentum, device=t.device, out_dir=config.out_dir,
        checkpoint_every=t.checkpoint_every, seed=t.seed, progress=progress,
        augment=t.augment, resume_from=resume_from, metadata=metadata, regularizer=regularizer,
        loss=t.loss,
    )


def _distributed_worker(config: TrainConfig, progress: bool, resume_from: str | Path | None,
                        measure: Callable[[Any, Any], Mapping[str, float]] | None = None
                        ) -> None:
    run_training(config, progress=progress, resume_from=resume_from, measure=measure)


def _launch_training(config: TrainConfig, *, progress: bool, resume_from: str | Path | None,
                     log: Callable[[str], None],
                     measure: Callable[[Any, Any], Mapping[str, float]] | None = None
                     ) -> TrainResult:
    """``training.nproc`` > 1: train in that many local processes (DistributedDataParallel,
    gloo on the CPU, NCCL on CUDA), then rebuild the trained model from rank 0's checkpoint."""
    t = config.training
    if torch.device(t.device).type == "cuda" and torch.cuda.device_count() < t.nproc:
        raise ConfigError(f"training.nproc is {t.nproc} but only {torch.cuda.device_count()} "
                          f"CUDA devices are visible")
    if config.out_dir is None:  # the checkpoint is how the result comes back
        config.out_dir = Path(tempfile.mkdtemp(prefix="qfx-train-"))
    log(f"training on {t.nproc} processes ({qdist.backend_for(t.device)}), batch_size "
        f"{t.batch_size} per process")
    t0 = time.perf_counter()
    qdist.launch(_distributed_worker, t.nproc, (config, progress, resume_from, measure))
    checkpoint = Path(config.out_dir) / CHECKPOINT_NAME
    model, side = restore_model(checkpoint, log=log)
    model.to(t.device)
    history = list(side["history"])
    if not history:
        raise RuntimeError(f"the distributed run wrote no history to {checkpoint}")
    plot = Path(config.out_dir) / PLOT_NAME
    return TrainResult(
        model=model, history=history, final_test_acc=history[-1]["test_acc"],
        best_test_acc=max(r["test_acc"] for r in history), seconds=time.perf_counter() - t0,
        out_dir=Path(config.out_dir), checkpoint=checkpoint,
        plot=plot if plot.is_file() else None, stopped_early=len(history) < t.epochs,
        metadata=side["metadata"])


def restore_model(
    path: str | Path,
    *,
    dataset_options: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = _log,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a ``run_training`` checkpoint was trained as and load its weights.

    The config stored in the sidecar is replayed: the same zoo model and, for a quantized run,
    ``qfx.quantize_model`` with the same calibration inputs (the dataset is reloaded, so its
    files must still be there: ``dataset_options`` overrides e.g. ``root``). Every tensor is
    then restored bit-exactly. Returns ``(model in eval mode, sidecar)``.

    Example:
        >>> import tempfile
        >>> cfg = parse_train_config({"dataset": {"name": "synthetic", "n": 64},
        ...                           "model": "digits_cnn", "training": {"epochs": 1},
        ...                           "out_dir": tempfile.mkdtemp()})
        >>> result = run_training(cfg, progress=False)
        >>> model, side = restore_model(result.checkpoint)
        >>> side["epoch"], type(model).__name__
        (1, 'DigitsCNN')
    """
    side, _ = read_checkpoint(path)
    meta = side.get("metadata") or {}
    if not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path} was not written by run_training (no config in its "
                              f"sidecar): rebuild the model yourself and use load_checkpoint")
    config = parse_train_config(meta["config"])
    config.dataset_options.update(dataset_options or {})
    if not meta.get("quantized"):
        config.quantization = None  # trained as float (e.g. no converter at the time)
    else:
        import qfx.nn as qnn

        if not hasattr(qnn, "quantize_model"):
            raise CheckpointError(f"{path} holds a quantized model but qfx.quantize_model is "
                                  f"not available to rebuild it")
    model, _, _, _ = _build_model(config, log)
    load_checkpoint(path, model)
    return model.eval(), {k: side[k] for k in ("epoch", "history", "metadata")}
