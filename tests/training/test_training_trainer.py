"""The trainer: learning, history, int_bits recording, determinism, resume, devices."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from qfx import FixedQuantizer
from qfx.data import synthetic_classification
from qfx.training import evaluate, lr_at, quantizer_int_bits, train

HISTORY_KEYS = {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
                "int_bits"}


def _mlp(seed: int = 0, classes: int = 4) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, classes))


class _QuantNet(nn.Module):
    """A small fixed-point net built from real qfx FixedQuantizers (per-tensor and
    per-channel), so the int_bits hook has something to record."""

    def __init__(self) -> None:
        super().__init__()
        self.qin = FixedQuantizer(6)
        self.fc = nn.Linear(64, 4)
        self.qw = FixedQuantizer(4, per_channel=True, num_channels=4)
        self.qout = FixedQuantizer(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.qin(x.flatten(1))
        w = self.qw(self.fc.weight).to(x.dtype)
        return self.qout(F.linear(x, w, self.fc.bias.to(x.dtype)))


@pytest.fixture(scope="module")
def data() -> tuple[TensorDataset, TensorDataset]:
    return synthetic_classification(400, (1, 8, 8), num_classes=4, seed=0, noise=1.5)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tiny_model_learns(data: tuple[TensorDataset, TensorDataset]) -> None:
    train_set, test_set = data
    model = _mlp()
    _, acc_before = evaluate(model, test_set)
    result = train(model, train_set, test_set, epochs=5, lr=1e-2, progress=False)
    assert len(result.history) == 5
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5]
    assert all(set(r) == HISTORY_KEYS for r in result.history)
    assert result.final_test_acc > max(acc_before + 0.3, 0.8)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_test_acc == max(r["test_acc"] for r in result.history)
    assert result.out_dir is None and result.checkpoint is None and result.plot is None


def test_int_bits_recorded_per_epoch(data: tuple[TensorDataset, TensorDataset]) -> None:
    train_set, test_set = data
    torch.manual_seed(0)
    model = _QuantNet()
    model.qin.calibrate(train_set.tensors[0])  # the others calibrate on the first batch
    initial_qin = model.qin.int_bits
    result = train(model, train_set, test_set, epochs=3, lr=1e-2, progress=False)
    # Only calibrated quantizers have a meaningful format before training.
    assert result.metadata["initial_int_bits"] == {"qin": initial_qin}
    for record in result.history:
        bits = record["int_bits"]
        assert set(bits) == {"qin", "qw", "qout"}
        assert isinstance(bits["qin"], int) and isinstance(bits["qout"], int)
        assert isinstance(bits["qw"], float)  # per-channel: the mean
    final = quantizer_int_bits(model)
    assert final == result.history[-1]["int_bits"]
    assert final["qw"] == sum(model.qw.int_bits) / 4
    assert result.final_test_acc > 0.5


def test_schedules() -> None:
    assert lr_at("constant", 0.1, 7, 10) == 0.1
    assert lr_at("cosine", 0.1, 0, 10) == 0.1
    assert math.isclose(lr_at("cosine", 0.1, 5, 10), 0.05)
    assert [lr_at("step", 1.0, e, 8) for e in range(8)] == [1.0] * 4 + [0.1] * 2 + [
        0.1 * 0.1] * 2
    with pytest.raises(ValueError, match="invalid schedule 'linear'; allowed: cosine, step"):
        lr_at("linear", 0.1, 0, 1)


@pytest.mark.parametrize("optimizer, schedule", [("sgd", "step"), ("adam", "constant")])
def test_history_lr_follows_schedule(data: tuple[TensorDataset, TensorDataset],
                                     optimizer: str, schedule: str) -> None:
    result = train(_mlp(), *data, epochs=4, lr=0.05, optimizer=optimizer, schedule=schedule,
                   weight_decay=1e-4, progress=False)
    assert [r["lr"] for r in result.history] == [lr_at(schedule, 0.05, e, 4) for e in range(4)]


def test_same_seed_same_result(data: tuple[TensorDataset, TensorDataset]) -> None:
    a = train(_mlp(), *data, epochs=2, lr=1e-2, seed=5, augment="flip", progress=False)
    b = train(_mlp(), *data, epochs=2, lr=1e-2, seed=5, augment="flip", progress=False)
    c = train(_mlp(), *data, epochs=2, lr=1e-2, seed=6, augment="flip", progress=False)
    assert _same(_state(a.model), _state(b.model))
    assert not _same(_state(a.model), _state(c.model))


def test_resume_matches_uninterrupted_run(tmp_path: Path,
                                          data: tuple[TensorDataset, TensorDataset]) -> None:
    torch.manual_seed(0)
    straight = train(_QuantNet(), *data, epochs=3, lr=1e-2, seed=1, progress=False)
    # Interrupt after epoch 2 (a callback returning True stops training) ...
    torch.manual_seed(0)
    first = train(_QuantNet(), *data, epochs=3, lr=1e-2, seed=1, progress=False,
                  out_dir=tmp_path, callbacks=[lambda epoch, record, model: epoch == 2])
    assert first.stopped_early and len(first.history) == 2
    assert first.checkpoint == tmp_path / "checkpoint.npz"
    # ... and resume into a fresh model: bit-identical weights, quantizers and history.
    torch.manual_seed(123)
    resumed = train(_QuantNet(), *data, epochs=3, lr=1e-2, seed=1, progress=False,
                    resume_from=first.checkpoint)
    assert _same(_state(straight.model), _state(resumed.model))
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in straight.history]


class _ListDataset(Dataset):
    """A map-style dataset that is not a TensorDataset (served through a DataLoader)."""

    def __init__(self, base: TensorDataset) -> None:
        self.items = [base[i] for i in range(len(base))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.items[i]


def test_generic_dataset_gives_the_same_training(
        data: tuple[TensorDataset, TensorDataset]) -> None:
    train_set, test_set = data
    a = train(_mlp(), train_set, test_set, epochs=2, lr=1e-2, batch_size=50, progress=False)
    b = train(_mlp(), _ListDataset(train_set), _ListDataset(test_set), epochs=2, lr=1e-2,
              batch_size=50, progress=False)
    assert _same(_state(a.model), _state(b.model))
    assert a.history[-1]["test_acc"] == b.history[-1]["test_acc"]


def test_crop_flip_augmentation_on_images(data: tuple[TensorDataset, TensorDataset]) -> None:
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(256, 4))
    result = train(conv, *data, epochs=2, lr=1e-2, augment="crop_flip", progress=False)
    assert len(result.history) == 2 and result.metadata["train"]["augment"] == "crop_flip"


def test_device_argument(data: tuple[TensorDataset, TensorDataset]) -> None:
    result = train(_mlp(), *data, epochs=1, device=torch.device("cpu"), progress=False)
    assert next(result.model.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="invalid device 'gpu0'"):
        train(_mlp(), *data, epochs=1, device="gpu0", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False"):
            train(_mlp(), *data, epochs=1, device="cuda", progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
    ({"batch_size": 2.5}, "batch_size must be an integer >= 1"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of adam, sgd, got 'rmsprop'"),
    ({"schedule": "poly"}, "schedule must be one of cosine, step, constant"),
    ({"weight_decay": -0.1}, "weight_decay must be a number >= 0"),
    ({"checkpoint_every": 0}, "checkpoint_every must be an integer >= 1"),
    ({"seed": 2**70}, r"seed must be an integer in \[0, 2\*\*63\)"),
    ({"augment": "mixup"}, "unknown augmentation 'mixup'; allowed: none, crop_flip, flip"),
])
def test_bad_arguments(data: tuple[TensorDataset, TensorDataset], kwargs: dict,
                       match: str) -> None:
    args = {"epochs": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        train(_mlp(), *data, progress=False, **args)


def test_divergence_is_reported(data: tuple[TensorDataset, TensorDataset]) -> None:
    with pytest.raises(RuntimeError, match="training diverged: train loss is nan in epoch 1"):
        train(_mlp(), *data, epochs=1, lr=1e30, optimizer="sgd", progress=False)


@pytest.mark.parametrize("point_lr, moves", [(None, True), (0.0, False)])
def test_binary_points_move_during_training(monkeypatch, point_lr, moves):
    # log2_lsb parameters get their own learning rate: at the weights' rate a binary point
    # would need thousands of steps to move one bit and learned formats would stay frozen.
    import qfx.training.trainer as trainer_mod
    from qfx.data import synthetic_classification
    from qfx.nn import QInput, QLinear

    if point_lr is not None:
        monkeypatch.setattr(trainer_mod, "BINARY_POINT_LR", point_lr)
    torch.manual_seed(0)
    tr, te = synthetic_classification(1024, (8,), num_classes=2, separation=3.0)
    qin = QInput(6)
    model = torch.nn.Sequential(qin, QLinear(8, 2))
    with torch.no_grad():
        qin.output_quantizer.log2_lsb.fill_(1.0 - 6)  # int_bits 1: clips most inputs
        qin.output_quantizer.initialized.fill_(True)
    train(model, tr, te, epochs=4, batch_size=32, lr=1e-3, progress=False, plot=False)
    assert (qin.output_quantizer.int_bits > 1) == moves
