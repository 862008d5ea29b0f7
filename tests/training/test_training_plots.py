"""Training plots are valid PNG files, for few and for many quantizers."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from qfx import FixedQuantizer
from qfx.data import synthetic_classification
from qfx.training import plot_history, train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _history(n_epochs: int, n_quantizers: int) -> list[dict]:
    return [{"epoch": e, "lr": 0.1 / e, "train_loss": 1 / e, "test_loss": 1.2 / e,
             "train_acc": 1 - 1 / (e + 1), "test_acc": 1 - 1.1 / (e + 1), "seconds": 0.1,
             "int_bits": {f"block{i}.conv.weight_quantizer": 3 + (e > i) - 0.5 * (i % 2)
                          for i in range(n_quantizers)}}
            for e in range(1, n_epochs + 1)]


@pytest.mark.parametrize("n_quantizers", [0, 3, 25])
def test_plot_is_a_png(tmp_path: Path, n_quantizers: int) -> None:
    path = plot_history(_history(4, n_quantizers), tmp_path / "h.png")
    width, height = _png_size(path)
    assert path.stat().st_size > 1000 and width > 500 and height > 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.png"]


def test_small_multiples_grow_with_quantizer_count(tmp_path: Path) -> None:
    _, few = _png_size(plot_history(_history(3, 5), tmp_path / "few.png"))
    _, many = _png_size(plot_history(_history(3, 45), tmp_path / "many.png"))
    assert many > few


def test_single_epoch_and_errors(tmp_path: Path) -> None:
    _png_size(plot_history(_history(1, 2), tmp_path / "one.png"))
    initial = {"block0.conv.weight_quantizer": 5}
    _png_size(plot_history(_history(2, 2), tmp_path / "init.png", initial_int_bits=initial))
    with pytest.raises(ValueError, match="cannot plot an empty history"):
        plot_history([], tmp_path / "e.png")
    with pytest.raises(ValueError, match="plot path must end in .png"):
        plot_history(_history(1, 1), tmp_path / "e.jpg")


def test_train_writes_plot_history_and_checkpoint(tmp_path: Path) -> None:
    train_set, test_set = synthetic_classification(200, (1, 8, 8), num_classes=4, seed=0)
    assert isinstance(train_set, TensorDataset)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), FixedQuantizer(8))
    torch.manual_seed(0)
    result = train(model, train_set, test_set, epochs=2, lr=1e-2, progress=False,
                   out_dir=tmp_path / "run", checkpoint_every=5)
    assert result.plot == tmp_path / "run" / "training.png"
    _png_size(result.plot)
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["checkpoint.json", "checkpoint.npz", "history.json", "training.png"]


def test_many_learned_widths_share_a_readable_panel(tmp_path: Path) -> None:
    """31 learned formats (a DS-CNN): a legend entry for each overflowed the widths panel and
    collapsed the figure's layout; now each is a faint line under their labelled mean."""
    import warnings

    history = [{"epoch": e, "train_loss": 1.0, "test_loss": 1.0, "train_acc": 0.5,
                "test_acc": 0.5, "lr": 0.01, "int_bits": {f"q{i}": 3 for i in range(31)},
                "widths": {f"q{i}": 4.0 + (i % 5) * e / 4 for i in range(31)},
                "resources": {"lut": 1000.0 / e}, "budget": {"lut": 800.0}}
               for e in (1, 2, 3)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_history(history, tmp_path / "h.png")
    assert not [w for w in caught if "constrained_layout" in str(w.message)]
