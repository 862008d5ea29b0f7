"""The qfx trainer: training on any torch device with one of :data:`LOSSES` (classification or
per-pixel cross-entropy, reconstruction MSE), with per-epoch history of the loss, accuracy,
learning rate and every quantizer's learned ``int_bits``."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset
from tqdm import tqdm

from qfx.atomic import atomic_write_text
from qfx.data.augment import Augmentation, get_augmentation
from qfx.training import distributed as qdist
from qfx.training.checkpoint import load_checkpoint, save_checkpoint

__all__ = [
    "train", "evaluate", "TrainResult", "quantizer_int_bits", "lr_at", "OPTIMIZERS", "SCHEDULES",
    "EpochCallback", "Loss", "LOSSES",
]

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "step", "constant")
# A callback sees (epoch, that epoch's history record, model); returning True stops training.
EpochCallback = Callable[[int, dict[str, Any], nn.Module], "bool | None"]
# Learning rate of quantizers' binary points (log2 of the step), see _make_optimizer.
BINARY_POINT_LR = 0.02
# Learning rate of learned word lengths (qfx.fixed.learned_width): a width must be able to
# move several bits within a few epochs to reach a resource budget.
WIDTH_LR = 0.05
# Names of quantizer format parameters (binary point; a learned width's range).
_FORMAT_PARAMS = ("log2_lsb", "log2_range")
# Training sets up to this size are copied to an accelerator once instead of batch by batch.
_MAX_DEVICE_BYTES = 1 << 30
CHECKPOINT_NAME = "checkpoint.npz"
HISTORY_NAME = "history.json"
PLOT_NAME = "training.png"


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Example:
        >>> from qfx.data import synthetic_classification
        >>> tr, te = synthetic_classification(128, (4,), num_classes=2)
        >>> result = train(nn.Linear(4, 2), tr, te, epochs=2, progress=False)
        >>> result.history[-1]["test_acc"] == result.final_test_acc
        True
    """

    model: nn.Module
    history: list[dict[str, Any]]
    final_test_acc: float
    best_test_acc: float
    seconds: float
    out_dir: Path | None = None
    checkpoint: Path | None = None
    plot: Path | None = None
    stopped_early: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


def quantizer_int_bits(model: nn.Module, *, calibrated_only: bool = False
                       ) -> dict[str, float | int]:
    """Current ``int_bits`` of every submodule that has one (e.g. ``qfx.FixedQuantizer``),
    keyed by module name; per-channel quantizers report the mean over channels.
    ``calibrated_only`` leaves out quantizers whose ``initialized`` flag is False.

    Example:
        >>> from qfx import FixedQuantizer
        >>> quantizer_int_bits(nn.Sequential(FixedQuantizer(8, int_bits=3)))
        {'0': 3}
    """
    out: dict[str, float | int] = {}
    for name, module in model.named_modules():
        try:
            bits = module.int_bits
        except Exception:  # noqa: BLE001 - absent, or not readable now: not a format to record
            continue
        if calibrated_only and not bool(getattr(module, "initialized", True)):
            continue
        if isinstance(bits, torch.Tensor):
            bits = bits.detach().to(torch.float64).cpu().tolist()
        if isinstance(bits, (list, tuple)):
            if not bits:
                continue
            out[name or "(model)"] = float(sum(bits) / len(bits))
        elif isinstance(bits, (int, float)) and not isinstance(bits, bool):
            out[name or "(model)"] = bits
    return out


# ---------------------------------------------------------------------- losses (flows12)
@dataclass(frozen=True)
class Loss:
    """A training loss: ``fn(outputs, inputs, targets)`` is the batch mean; ``accuracy`` says
    whether the targets are labels that ``outputs.argmax(1)`` is judged against (per sample,
    or per pixel for label maps). Without it the history's accuracies are NaN.

    Example:
        >>> LOSSES["reconstruction_mse"].fn(torch.ones(2, 3), torch.zeros(2, 3), None).item()
        1.0
    """

    fn: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
    accuracy: bool
    description: str


def _reconstruction_mse(out: torch.Tensor, x: torch.Tensor, _y: Any) -> torch.Tensor:
    return F.mse_loss(out, x.reshape(out.shape))


def _probability_nll(out: torch.Tensor, _x: Any, y: Any) -> torch.Tensor:
    # a quantized probability can be exactly 0: its log is floored at the finest float32 value
    return F.nll_loss(torch.log(out.float().clamp_min(torch.finfo(torch.float32).tiny)), y)


#: name -> loss (``training.loss`` in a config; a flow's ``task`` picks its default).
LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss(lambda out, _x, y: F.cross_entropy(out, y), True,
                          "cross-entropy of the class scores: per sample (labels) or per pixel "
                          "(label maps, scores N x C x H x W)"),
    "probability_nll": Loss(_probability_nll, True,
                            "negative log-likelihood of class probabilities (a model that ends "
                            "in a softmax, e.g. digits_mlp_softmax)"),
    "reconstruction_mse": Loss(_reconstruction_mse, False,
                               "mean squared error between the output and the input "
                               "(an autoencoder's reconstruction)"),
}


def _correct(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Labels (or label-map pixels) the scores' argmax gets right, and how many were judged."""
    return (out.argmax(1) == y).sum(), y.numel()


class Regularizer:
    """A training-loss term: ``step_penalty()`` after each forward pass (added to the loss),
    ``epoch_record(model)`` fields for the epoch's history record (e.g. ``resources``).

    ``settle`` (a fraction of the epochs, 0 for none): the last epochs train the weights with
    the regularized quantities held (``hold(model)``, after a ``finish``), so that training
    ends on the formats it fine-tuned, not on a last change of them. Those epochs restart the
    learning-rate schedule, from ``settle_lr`` times the base rate, over their own length:
    the weights meet new formats, and the tail of the first schedule is too small a rate to
    adapt to them. Training ends on the settle epoch best on the training samples whose
    ``epoch_record`` does not say ``fits_budget: False``."""

    settle: float = 0.0
    settle_lr: float = 0.5
    # the trainer sets it to its own ``progress``: long work in ``finish`` may show a bar
    progress: bool = False

    def plan(self, steps: int) -> None:
        """Before the first epoch: ``steps`` training steps come before the settle phase
        (all of the run's steps when there is none)."""

    def hold(self, model: nn.Module, *, restored: bool = False) -> None:
        """Stop changing what the penalty shapes (the settle phase begins). ``restored``: a
        run resumed inside the settle phase; what was held is in the restored model."""

    def release(self, model: nn.Module) -> None:
        """After training: what ``hold`` stopped trains again (a later run may change it)."""

    def step_penalty(self) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def epoch_record(self, model: nn.Module) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, Any]:
        """What the regularizer has learned, as JSON numbers, lists and dicts: a checkpoint
        keeps it and a resumed run hands it to :meth:`load_state`."""
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Go on from :meth:`state` (a resumed run, before its first step)."""

    def finish(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
               loss: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor] | None = None
               ) -> dict[str, Any]:
        """After the last epoch (``x, y``: the first training samples; ``loss``: the run's
        ``Loss.fn``): may change the model (e.g. make it fit a budget) and returns fields for
        the last epoch's record."""
        return {}


def _resources_text(record: Mapping[str, Any]) -> str:
    res = record.get("resources")
    if not res:
        return ""
    return "  est. " + " ".join(f"{k} {v:,.0f}" for k, v in res.items())


def lr_at(schedule: str, base_lr: float, epoch: int, epochs: int) -> float:
    """Learning rate of (0-based) ``epoch``: cosine decay, step (x0.1 at 50% and 75%), constant.

    Example:
        >>> lr_at("step", 0.1, 8, 10)
        0.0010000000000000002
    """
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if schedule == "step":
        milestones = [m for m in (round(0.5 * epochs), round(0.75 * epochs)) if m > 0]
        return base_lr * 0.1 ** sum(epoch >= m for m in milestones)
    raise ValueError(f"invalid schedule {schedule!r}; allowed: {', '.join(SCHEDULES)}")


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"invalid device {device!r}: {err}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but torch.cuda.is_available() is False")
    return dev


class _Batches:
    """Batches of a dataset in a given order, on ``device``."""

    def __init__(self, dataset: Dataset, batch_size: int, device: torch.device) -> None:
        self.dataset, self.batch_size, self.device = dataset, batch_size, device
        self.tensors: list[torch.Tensor] | None = None
        if isinstance(dataset, TensorDataset):
            size = sum(t.numel() * t.element_size() for t in dataset.tensors)
            move = device.type != "cpu" and size <= _MAX_DEVICE_BYTES
            self.tensors = [t.to(device) if move else t for t in dataset.tensors]

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def iterate(self, order: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.tensors is not None:
            order = order.to(self.tensors[0].device)
            for idx in order.split(self.batch_size):
                x, y = (t[idx] for t in self.tensors[:2])
                yield (x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))
            return
        loader = DataLoader(self.dataset, batch_size=self.batch_size,
                            sampler=order.tolist(), num_workers=0)
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    loss: str = "cross_entropy",
) -> tuple[float, float]:
    """Mean loss (one of :data:`LOSSES`) and accuracy of ``model`` (in eval mode) on
    ``dataset`` (accuracy NaN for a loss without one, e.g. ``reconstruction_mse``).

    Example:
        >>> from qfx.data import synthetic_classification
        >>> _, test = synthetic_classification(64, (4,), num_classes=2)
        >>> loss, acc = evaluate(nn.Linear(4, 2), test)
        >>> 0.0 <= acc <= 1.0
        True
    """
    _check("loss", loss, loss in LOSSES, f"one of {', '.join(LOSSES)}")
    return _evaluate(model, _Batches(dataset, batch_size, _device(device)), LOSSES[loss])


@torch.no_grad()
def _evaluate(model: nn.Module, batches: _Batches, loss: Loss,
              indices: torch.Tensor | None = None) -> tuple[float, float]:
    """Mean loss and accuracy in eval mode on the batches' dataset (``indices``: a part)."""
    dataset, dev = batches.dataset, batches.device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    n = judged = 0
    for x, y in batches.iterate(torch.arange(len(dataset)) if indices is None else indices):
        out = model(x)
        loss_sum += loss.fn(out, x, y).to(torch.float64) * len(x)
        if loss.accuracy:
            right, count = _correct(out, y)
            correct += right
            judged += count
        n += len(x)
    model.train(was_training)
    if n == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    return float(loss_sum) / n, int(correct) / judged if judged else math.nan


def _check(name: str, value: Any, ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {what}, got {value!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _width_params(model: nn.Module) -> set[int]:
    from qfx.fixed.learned_width import WidthQuantizer

    return {id(p) for m in model.modules() if isinstance(m, WidthQuantizer)
            for p in m.parameters()}


def _make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float,
                    momentum: float) -> torch.optim.Optimizer:
    # Decay only weight matrices/kernels: biases, BN affine and quantizer binary points
    # (log2_lsb, a scalar or per-channel vector) must not be pulled toward zero.
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters")
    # A binary point moves one bit when log2_lsb crosses a half-integer: at the weights'
    # learning rate (Adam moves each parameter about lr per step) it would take thousands of
    # steps, and learned formats would never move. They get their own, larger step.
    widths = _width_params(model)  # learned word lengths: their own, larger step
    points = [p for n, p in named if n.endswith(_FORMAT_PARAMS) and id(p) not in widths]
    learned = [p for n, p in named if n.endswith(_FORMAT_PARAMS) and id(p) in widths]
    params = [p for n, p in named if not n.endswith(_FORMAT_PARAMS)]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [g for g in ({"params": decay, "weight_decay": weight_decay},
                          {"params": no_decay, "weight_decay": 0.0},
                          {"params": points, "weight_decay": 0.0,
                           "base_lr": max(lr, BINARY_POINT_LR)},
                          {"params": learned, "weight_decay": 0.0,
                           "base_lr": max(lr, WIDTH_LR)}) if g["params"]]
    for g in groups:
        g.setdefault("base_lr", lr)
        g["lr"] = g["base_lr"]
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)


def train(
    model: nn.Module,
    train_set: Dataset,
    test_set: Dataset,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    optimizer: str = "adam",
    schedule: str = "cosine",
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    device: str | torch.device = "cpu",
    out_dir: str | Path | None = None,
    checkpoint_every: int = 1,
    seed: int = 0,
    progress: bool = True,
    callbacks: Sequence[EpochCallback] | None = None,
    augment: str | Augmentation | None = None,
    resume_from: str | Path | None = None,
    metadata: Mapping[str, Any] | None = None,
    plot: bool = True,
    regularizer: Regularizer | None = None,
    loss: str = "cross_entropy",
) -> TrainResult:
    """Train a model with ``loss`` (one of :data:`LOSSES`: a classifier's or segmenter's
    cross-entropy, an autoencoder's reconstruction MSE); returns the model, per-epoch history
    and files. With a loss that has no accuracy the history's accuracies are NaN.

    Each history record has ``epoch`` (1-based), ``lr``, ``train_loss``, ``train_acc``,
    ``test_loss``, ``test_acc``, ``seconds`` and ``int_bits`` (see :func:`quantizer_int_bits`).
    ``metadata["initial_int_bits"]`` holds the calibrated formats before the first epoch.
    With ``out_dir``, a pickle-free checkpoint (``checkpoint.npz`` + ``.json``) is written every
    ``checkpoint_every`` epochs and at the end, with ``history.json`` and ``training.png``.
    ``resume_from`` continues from a checkpoint (model, optimizer, history). Shuffling and
    augmentation are seeded per epoch, so a run is reproducible and a resumed run matches an
    uninterrupted one on the CPU (CUDA kernels may not be deterministic). Weight decay applies
    only to parameters with >= 2 dims. A callback returning True stops training.
    ``regularizer`` (e.g. :class:`qfx.training.budget.BudgetRegularizer`) adds its penalty to
    every step's loss and may add fields to each epoch's record.

    Inside an initialised ``torch.distributed`` process group of several processes (see
    ``qfx.training.distributed``: ``qfx train --nproc N`` or ``torchrun``), the model is trained
    with DistributedDataParallel: each rank reads its ``DistributedSampler`` shard
    (``batch_size`` per rank), quantizers not yet calibrated are calibrated from every rank's
    first batch, qfx BatchNorm statistics are synchronised over the ranks, gradients (binary
    points included) are averaged, the reported train loss/accuracy cover all ranks, and only
    rank 0 writes the checkpoint, history and plot.

    Example:
        >>> from qfx.data import synthetic_classification
        >>> tr, te = synthetic_classification(256, (8,), num_classes=2)
        >>> res = train(nn.Linear(8, 2), tr, te, epochs=3, lr=0.05, progress=False)
        >>> len(res.history)
        3
    """
    _check_arguments(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                     schedule=schedule, weight_decay=weight_decay, momentum=momentum,
                     checkpoint_every=checkpoint_every, seed=seed)
    _check("loss", loss, loss in LOSSES, f"one of {', '.join(LOSSES)}")
    if len(train_set) == 0:
        raise ValueError("the training set is empty")
    run = _setup(model, train_set, test_set, epochs=epochs, batch_size=batch_size, lr=lr,
                 optimizer=optimizer, schedule=schedule, weight_decay=weight_decay,
                 momentum=momentum, device=device, out_dir=out_dir,
                 checkpoint_every=checkpoint_every, seed=seed, progress=progress,
                 callbacks=callbacks, augment=augment, resume_from=resume_from,
                 metadata=metadata)
    run.regularizer = regularizer
    if regularizer is not None and "regularizer_state" in run.meta \
            and hasattr(regularizer, "load_state"):  # a resumed run goes on where it was
        regularizer.load_state(run.meta["regularizer_state"])
    run.loss = LOSSES[loss]
    run.meta["train"]["loss"] = loss
    if run.world > 1:
        _calibrate_across_ranks(run, resume_from is None)
    t0 = time.perf_counter()
    checkpoint: Path | None = None
    stopped = False
    reg = run.regularizer
    run.settle_from = settle_from = epochs - math.ceil(reg.settle * epochs) \
        if reg is not None and 0 < reg.settle < 1 and epochs > 1 else epochs
    if reg is not None and hasattr(reg, "plan"):  # a duck-typed regularizer may not have it
        reg.plan(max(settle_from - run.start, 0) * len(run.batches))
    if reg is not None:
        reg.progress = run.progress
    for epoch in range(run.start, epochs):
        if epoch == settle_from:
            _settle(run, epoch)
        elif epoch == run.start > settle_from:  # resumed inside the settle phase
            _resettle(run)
        record = _run_epoch(run, epoch)
        run.history.append(record)
        if run.progress:
            tqdm.write(f"epoch {epoch + 1}/{epochs}  lr {record['lr']:.3g}  "
                       f"loss {record['train_loss']:.4f}  " + _accuracy_text(record)
                       + _resources_text(record),
                       file=sys.stderr)
        stopped = any(bool(cb(epoch + 1, record, run.model)) for cb in run.callbacks)
        stopped = qdist.any_rank(stopped, run.dev)  # every rank stops together
        last = stopped or epoch + 1 == epochs
        if run.settle_best is not None:
            if record.get("fits_budget", True):
                _keep_settle_best(run, epoch + 1)
            if last:
                _restore_settle_best(run, record)
        if last and run.regularizer is not None:
            _finish_regularizer(run, record)
        if last or (epoch + 1) % checkpoint_every == 0:
            checkpoint = _save_checkpoint(run, epoch + 1) or checkpoint
        if stopped:
            break
    if reg is not None:
        reg.release(run.model)
    checkpoint, plot_path = _write_outputs(run, checkpoint, plot)
    if run.history:
        final, best = run.history[-1]["test_acc"], max(r["test_acc"] for r in run.history)
    else:
        final = best = _evaluate(run.model, run.test_batches, run.loss)[1]
    return TrainResult(model=run.model, history=run.history, final_test_acc=final,
                       best_test_acc=best, seconds=time.perf_counter() - t0, out_dir=run.out,
                       checkpoint=checkpoint, plot=plot_path, stopped_early=stopped,
                       metadata=run.meta)


def _accuracy_text(record: Mapping[str, Any]) -> str:
    if math.isnan(record["test_acc"]):  # a loss without accuracy (reconstruction)
        return f"test loss {record['test_loss']:.4f}"
    return f"train acc {record['train_acc']:.4f}  test acc {record['test_acc']:.4f}"


def _check_arguments(*, epochs: Any, batch_size: Any, lr: Any, optimizer: Any, schedule: Any,
                     weight_decay: Any, momentum: Any, checkpoint_every: Any, seed: Any) -> None:
    """Raise ValueError naming the first invalid hyper-parameter of :func:`train`."""
    _check("epochs", epochs, _is_int(epochs) and epochs >= 1, "an integer >= 1")
    _check("batch_size", batch_size, _is_int(batch_size) and batch_size >= 1, "an integer >= 1")
    _check("lr", lr, isinstance(lr, (int, float)) and lr > 0, "a positive number")
    _check("optimizer", optimizer, optimizer in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}")
    _check("schedule", schedule, schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}")
    _check("weight_decay", weight_decay,
           isinstance(weight_decay, (int, float)) and weight_decay >= 0, "a number >= 0")
    _check("momentum", momentum, isinstance(momentum, (int, float)) and 0 <= momentum < 1,
           "a number in [0, 1)")
    _check("checkpoint_every", checkpoint_every,
           _is_int(checkpoint_every) and checkpoint_every >= 1, "an integer >= 1")
    _check("seed", seed, _is_int(seed) and 0 <= seed < 1 << 63, "an integer in [0, 2**63)")


@dataclass
class _Run:
    """Everything one :func:`train` call carries from setup through the epochs to its files."""

    model: nn.Module
    net: nn.Module  # ``model``, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    dev: torch.device
    batches: _Batches
    test_batches: _Batches
    train_set: Dataset
    epochs: int
    lr: float | int  # as given (metadata and messages show it so); computations use float(lr)
    schedule: str
    seed: int
    augment_fn: Augmentation | None
    callbacks: list[EpochCallback]
    out: Path | None
    rank: int
    world: int
    writer: bool  # this rank writes checkpoint, history and plot
    progress: bool
    meta: dict[str, Any]
    history: list[dict[str, Any]]
    start: int  # first (0-based) epoch to run: > 0 when resumed
    sampler: DistributedSampler | None = None
    regularizer: Regularizer | None = None  # a penalty added to every step's loss
    loss: Loss = LOSSES["cross_entropy"]
    settle_from: int | None = None  # first (0-based) epoch of the regularizer's settle phase
    # the settle phase's best model so far: ((-accuracy, loss) on the finish samples,
    # 1-based epoch, state)
    settle_best: tuple[tuple[float, ...], int, dict[str, torch.Tensor]] | None = None
    # the checkpoint's settle_best (a run resumed inside its settle phase): see _resettle
    resumed_best: Mapping[str, Any] | None = None


def _setup(model: nn.Module, train_set: Dataset, test_set: Dataset, *, epochs: int,
           batch_size: int, lr: float | int, optimizer: str, schedule: str, weight_decay: float,
           momentum: float, device: str | torch.device, out_dir: str | Path | None,
           checkpoint_every: int, seed: int, progress: bool,
           callbacks: Sequence[EpochCallback] | None, augment: str | Augmentation | None,
           resume_from: str | Path | None, metadata: Mapping[str, Any] | None) -> _Run:
    """Device, optimizer, metadata, batches and (when resuming) the checkpoint's state."""
    augment_fn = get_augmentation(augment) if isinstance(augment, str) or augment is None \
        else augment
    dev = _device(device)
    torch.manual_seed(seed)
    model.to(dev)
    rank, world = qdist.world()
    opt = _make_optimizer(model, optimizer, float(lr), float(weight_decay), float(momentum))
    meta = {
        "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
                  "schedule": schedule, "weight_decay": weight_decay, "momentum": momentum,
                  "seed": seed, "augment": augment if isinstance(augment, str) else None},
        **dict(metadata or {}),
    }
    history: list[dict[str, Any]] = []
    start = 0
    resumed_best = None
    if resume_from is not None:
        side = load_checkpoint(resume_from, model, opt)
        start, history = int(side["epoch"] or 0), list(side["history"])
        meta["initial_int_bits"] = side["metadata"].get("initial_int_bits", {})
        if side["metadata"].get("regularizer_state") is not None:
            meta["regularizer_state"] = side["metadata"]["regularizer_state"]
        resumed_best = (side["extra"] or {}).get("settle_best")
    else:
        # Formats before training (e.g. from calibration), the start of the int_bits curves.
        meta["initial_int_bits"] = quantizer_int_bits(model, calibrated_only=True)
    return _Run(model=model, net=model, opt=opt, dev=dev,
                batches=_Batches(train_set, batch_size, dev),
                test_batches=_Batches(test_set, max(batch_size, 256), dev),
                train_set=train_set, epochs=epochs, lr=lr, schedule=schedule, seed=seed,
                augment_fn=augment_fn, callbacks=list(callbacks or []),
                out=Path(out_dir) if out_dir is not None else None, rank=rank, world=world,
                writer=rank == 0, progress=progress and rank == 0, meta=meta, history=history,
                start=start, resumed_best=resumed_best)


def _calibrate_across_ranks(run: _Run, record_initial: bool) -> None:
    """Several ranks: calibrate from every rank's first batch, synchronise qfx BatchNorm
    statistics and wrap the model in DistributedDataParallel (``run.net``)."""
    run.sampler = DistributedSampler(run.train_set, num_replicas=run.world, rank=run.rank,
                                     shuffle=True, seed=run.seed % (1 << 62), drop_last=False)
    run.sampler.set_epoch(run.start)
    first = next(iter(run.batches.iterate(torch.tensor(list(run.sampler)))))[0]
    run.model.train()
    qdist.calibrate_across_ranks(run.model, first)
    if record_initial:  # formats now set from every rank's data
        run.meta["initial_int_bits"] = quantizer_int_bits(run.model, calibrated_only=True)
    from qfx.nn.norm import sync_batchnorm

    sync_batchnorm(run.model)
    _wrap_ddp(run)


def _wrap_ddp(run: _Run) -> None:
    """``run.net``: the model in DistributedDataParallel, which reduces the gradients of the
    parameters that train now (wrapped again when a settle phase holds some: DDP expects a
    gradient for every parameter it was built with). It broadcasts rank 0's parameters and
    buffers: every rank goes on identical."""
    run.net = nn.parallel.DistributedDataParallel(
        run.model, device_ids=[run.dev.index] if run.dev.type == "cuda" else None)


def _train_step(run: _Run, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch; returns the (detached) loss and logits."""
    run.opt.zero_grad(set_to_none=True)
    logits = run.net(x)
    loss = run.loss.fn(logits, x, y)
    reg = run.regularizer
    (loss if reg is None else loss + reg.step_penalty()).backward()
    run.opt.step()
    return loss.detach(), logits.detach()


def _epoch_lr(run: _Run, base: float, epoch: int) -> float:
    """The schedule's rate at (0-based) ``epoch``; a settle phase restarts it (see
    :class:`Regularizer`)."""
    s = run.settle_from
    if s is None or epoch < s:  # a settle phase implies a regularizer
        return lr_at(run.schedule, base, epoch, run.epochs)
    return lr_at(run.schedule, base * run.regularizer.settle_lr, epoch - s, run.epochs - s)


def _run_epoch(run: _Run, epoch: int) -> dict[str, Any]:
    """Train one (0-based) epoch and evaluate; returns its history record."""
    t_epoch = time.perf_counter()
    # Per-epoch seeds: a resumed run sees the same shuffles and augmentations.
    epoch_seed = (run.seed * 1_000_003 + epoch) % (1 << 63)  # stays a valid torch seed
    torch.manual_seed(epoch_seed)
    gen = torch.Generator().manual_seed(epoch_seed)
    lr_now = _epoch_lr(run, float(run.lr), epoch)
    for group in run.opt.param_groups:  # each group follows the schedule from its own base
        group["lr"] = _epoch_lr(run, group.get("base_lr", float(run.lr)), epoch)
    run.model.train()
    if run.sampler is not None:
        run.sampler.set_epoch(epoch)
        order = torch.tensor(list(run.sampler), dtype=torch.int64)
    else:
        order = torch.randperm(len(run.train_set), generator=gen)
    loss_sum = torch.zeros((), dtype=torch.float64, device=run.dev)
    correct = torch.zeros((), dtype=torch.int64, device=run.dev)
    seen = judged = 0
    bar = tqdm(total=len(run.batches), desc=f"epoch {epoch + 1}/{run.epochs}", unit="batch",
               leave=False, disable=None if run.progress else True, file=sys.stderr)
    for step, (x, y) in enumerate(run.batches.iterate(order)):
        if run.augment_fn is not None:
            x = run.augment_fn(x, gen)
        loss, logits = _train_step(run, x, y)
        loss_sum += loss.to(torch.float64) * len(x)
        if run.loss.accuracy:
            right, count = _correct(logits, y)
            correct += right
            judged += count
        seen += len(x)
        bar.update(1)
        if not bar.disable and step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    bar.close()
    if run.world > 1:  # the epoch's loss and accuracy over every rank's shard
        counts = torch.tensor([float(seen), float(judged)], dtype=torch.float64,
                              device=run.dev)
        qdist.all_reduce_sum(loss_sum, correct, counts)
        seen, judged = int(counts[0].item()), int(counts[1].item())
    train_loss = float(loss_sum) / seen
    if not math.isfinite(train_loss):
        raise RuntimeError(f"training diverged: train loss is {train_loss} in epoch "
                           f"{epoch + 1}; lower the learning rate (lr={run.lr})")
    test_loss, test_acc = _evaluate(run.model, run.test_batches, run.loss)
    record = {
        "epoch": epoch + 1, "lr": lr_now, "train_loss": train_loss,
        "train_acc": int(correct) / judged if judged else math.nan, "test_loss": test_loss,
        "test_acc": test_acc,
        "seconds": time.perf_counter() - t_epoch, "int_bits": quantizer_int_bits(run.model),
    }
    if run.regularizer is not None:  # e.g. the estimated resources of the epoch's model
        record.update(run.regularizer.epoch_record(run.model))
    return record


# Training samples the regularizer's last step (Regularizer.finish) judges the loss on.
_FINISH_SAMPLES = 1024


def _finish_regularizer(run: _Run, record: dict[str, Any]) -> None:
    """The regularizer's last word (e.g. the budget guarantee): its fields join the record;
    if it changed the model, the record's test loss and accuracy are the changed model's."""
    before = [t.detach().clone() for t in run.model.state_dict().values()]
    extra = _regularizer_finish(run)
    if not extra:
        return
    record.update(extra)
    after = list(run.model.state_dict().values())
    unchanged = len(before) == len(after) and all(
        torch.equal(a, b) for a, b in zip(before, after, strict=True))
    if not unchanged:  # (the last epoch's, or the settle phase's best, evaluation stands)
        record["test_loss"], record["test_acc"] = _evaluate(run.model, run.test_batches,
                                                            run.loss)
    if run.progress:
        tqdm.write(f"after training: test acc {record['test_acc']:.4f}  "
                   + "  ".join(f"{k}: {v}" for k, v in _finish_text(extra).items()),
                   file=sys.stderr)


def _settle(run: _Run, epoch: int) -> None:
    """Before ``epoch``: the regularizer's last word on the model as it is (e.g. the budget
    guarantee), then its quantities held for the remaining epochs."""
    extra = _regularizer_finish(run)
    run.regularizer.hold(run.model)
    if run.world > 1:
        _wrap_ddp(run)
    run.settle_best = None
    _keep_settle_best(run, epoch)
    if run.progress and extra:
        tqdm.write(f"settling from epoch {epoch + 1}: "
                   + "  ".join(f"{k}: {v}" for k, v in _finish_text(extra).items()),
                   file=sys.stderr)


def _resettle(run: _Run) -> None:
    """A run resumed inside its settle phase goes on as if uninterrupted: the formats the
    checkpoint held stay held (no second guarantee), and the phase's best model so far comes
    back from the checkpoint (a checkpoint without it starts the choice here)."""
    run.regularizer.hold(run.model, restored=True)
    if run.world > 1:
        _wrap_ddp(run)
    best, run.resumed_best = run.resumed_best, None
    if best is None:
        _keep_settle_best(run, run.start)
    else:
        run.settle_best = (tuple(best["score"]), int(best["epoch"]), best["state"])


def _finish_indices(run: _Run) -> torch.Tensor:
    return torch.arange(min(len(run.train_set), _FINISH_SAMPLES))


def _keep_settle_best(run: _Run, epoch: int) -> None:
    """Keep the model after (1-based) ``epoch`` of the settle phase (``epoch`` = its first:
    as the guarantee left it) if it is the best yet in eval mode on the finish samples: the
    highest accuracy (a loss that has one), then the lowest loss. An epoch whose record says
    ``fits_budget: False`` is not a candidate (the phase's first model, made to fit, is).
    The settle epochs share one set of formats (the estimate still follows the values a
    little, hence the check); the last one is not always the best: a coarse BatchNorm scale
    can zero a channel in one epoch and not in the next as the running statistics move
    (breast cancer at a third of the 4-bit cost: 76% and 94% test accuracy two epochs
    apart). Training samples judge, never the test set."""
    loss, acc = _evaluate(run.model, run.batches, run.loss, _finish_indices(run))
    score = torch.tensor([0.0 if math.isnan(acc) else -acc, loss], dtype=torch.float64,
                         device=run.dev)
    qdist.all_reduce_sum(score)  # every rank keeps the same epoch
    key = tuple(score.tolist())
    if run.settle_best is None or key < run.settle_best[0]:
        state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        run.settle_best = (key, epoch, state)


def _restore_settle_best(run: _Run, record: dict[str, Any]) -> None:
    """After the last epoch: back to the settle phase's best model, if not the last; the
    record says which epoch it is and carries its test loss and accuracy."""
    _, epoch, state = run.settle_best
    run.settle_best = None
    if epoch == record["epoch"]:
        return
    run.model.load_state_dict(state)
    record["settle_best_epoch"] = epoch
    record.update(run.regularizer.epoch_record(run.model))
    record["test_loss"], record["test_acc"] = _evaluate(run.model, run.test_batches, run.loss)
    if run.progress:
        tqdm.write(f"settle phase: kept the model after epoch {epoch} (the best on the "
                   f"training samples), test acc {record['test_acc']:.4f}", file=sys.stderr)


def _regularizer_finish(run: _Run) -> dict[str, Any]:
    """``Regularizer.finish`` on the first training samples, with the run's loss."""
    xs, ys = zip(*run.batches.iterate(_finish_indices(run)), strict=True)
    return run.regularizer.finish(run.model, torch.cat(xs), torch.cat(ys), loss=run.loss.fn)


def _finish_text(extra: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in extra.items():
        if isinstance(value, Mapping) and "after" in value:
            coarsened, pruned = value.get("coarsened") or [], value.get("pruned") or []
            out[key] = (f"{len(coarsened)} format(s) coarsened by a bit, "
                        + (f"{len(pruned)} channel(s) pruned, " if pruned else "") + "est. "
                        + " ".join(f"{k} {v:,.0f}" for k, v in value["after"].items()))
        else:
            out[key] = str(value)
    return out


def _save_checkpoint(run: _Run, epoch: int) -> Path | None:
    """Rank 0 with an ``out_dir`` writes the checkpoint after (1-based) ``epoch``."""
    if not run.writer or run.out is None:
        return None
    if run.regularizer is not None and hasattr(run.regularizer, "state"):
        run.meta["regularizer_state"] = run.regularizer.state()
    extra = None
    if run.settle_best is not None:  # inside the settle phase: its best model so far
        score, best_epoch, state = run.settle_best
        extra = {"settle_best": {"score": list(score), "epoch": best_epoch, "state": state}}
    return save_checkpoint(run.out / CHECKPOINT_NAME, run.model, epoch=epoch,
                           history=run.history, metadata=run.meta, optimizer=run.opt,
                           extra=extra)


def _write_outputs(run: _Run, checkpoint: Path | None, plot: bool
                   ) -> tuple[Path | None, Path | None]:
    """History, final checkpoint (if none yet) and plot, written once by rank 0; every rank
    waits for them. Returns (checkpoint, plot) paths."""
    plot_path = None
    if run.writer and run.out is not None:
        atomic_write_text(run.out / HISTORY_NAME, json.dumps(run.history, indent=1))
        if checkpoint is None and run.history:
            checkpoint = _save_checkpoint(run, run.history[-1]["epoch"])
        if plot and run.history:
            from qfx.training.plots import plot_history

            plot_path = plot_history(run.history, run.out / PLOT_NAME,
                                     initial_int_bits=run.meta["initial_int_bits"])
    if run.world > 1:
        qdist.barrier()  # rank 0's files are complete when any rank returns
        if run.out is not None and not run.writer and run.history:
            checkpoint = run.out / CHECKPOINT_NAME
    return checkpoint, plot_path
