"""Pickle-free checkpoints: bit-exact round trips, optimizer state, and clear errors."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from qfx import FixedQuantizer
from qfx.training import CheckpointError, load_checkpoint, save_checkpoint, sidecar_path

_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


class _Zoo(nn.Module):
    """Every kind of state a qfx model carries: float32/bfloat16/float16 tensors, int64 and
    bool buffers, 0-dim tensors, a FixedQuantizer and BatchNorm statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.q = FixedQuantizer(8, per_channel=True, num_channels=3)
        self.q0 = FixedQuantizer(6, int_bits=2)
        self.bf16 = nn.Parameter(torch.randn(4).to(torch.bfloat16))
        self.register_buffer("h16", torch.randn(2, 2).to(torch.float16))
        self.register_buffer("mask", torch.tensor([True, False, True]))
        self.register_buffer("count", torch.tensor(2**62 + 3, dtype=torch.int64))
        self.register_buffer("special", torch.tensor([float("nan"), -0.0, float("inf"), 1e-45]))


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(_BITS[t.element_size()]) if t.dtype != torch.bool else t


def _assert_bit_identical(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and sa[k].shape == sb[k].shape, k
        assert torch.equal(_bits(sa[k]), _bits(sb[k])), k


def _trained_zoo(seed: int) -> _Zoo:
    torch.manual_seed(seed)
    m = _Zoo()
    m.bn(m.conv(torch.randn(8, 2, 5, 5)))  # moves running stats and num_batches_tracked
    m.q.calibrate(torch.randn(3, 50) * torch.tensor([[1.0], [5.0], [0.1]]))
    return m


def test_round_trip_is_bit_identical(tmp_path: Path) -> None:
    src, dst = _trained_zoo(0), _trained_zoo(1)
    path = save_checkpoint(tmp_path / "m.npz", src, epoch=7, history=[{"epoch": 7}],
                           metadata={"model": "zoo", "kwargs": {"a": [1, 2]}})
    side = load_checkpoint(path, dst)
    _assert_bit_identical(src, dst)
    assert side == {"epoch": 7, "history": [{"epoch": 7}],
                    "metadata": {"model": "zoo", "kwargs": {"a": [1, 2]}}, "extra": None}
    assert dst.q.int_bits == src.q.int_bits and bool(dst.q.initialized)


def test_extra_state_round_trips_exactly(tmp_path: Path) -> None:
    src = _trained_zoo(0)
    state = {k: v.clone() for k, v in src.state_dict().items()}
    extra = {"best": {"score": [-0.75, 0.125], "epoch": 6, "state": state}}
    side = load_checkpoint(save_checkpoint(tmp_path / "m.npz", src, extra=extra), _trained_zoo(1))
    got = side["extra"]["best"]
    assert got["score"] == [-0.75, 0.125] and got["epoch"] == 6
    assert list(got["state"]) == list(state)
    for k, v in state.items():
        assert got["state"][k].dtype == v.dtype and torch.equal(_bits(got["state"][k]), _bits(v)), k


def test_files_hold_no_pickles(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.npz", _trained_zoo(0))
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
    with zipfile.ZipFile(path) as zf:
        assert all(n.endswith(".npy") for n in zf.namelist())
    side = json.loads(sidecar_path(path).read_text())
    assert side["tensors"]["model/bf16"] == {"dtype": "bfloat16", "shape": [4]}
    assert side["tensors"]["model/mask"]["dtype"] == "bool"


def test_optimizer_state_round_trip(tmp_path: Path) -> None:
    def setup(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        return net, torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.8, 0.95))

    def step(net: nn.Module, opt: torch.optim.Optimizer, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        opt.zero_grad()
        net(torch.randn(16, 4, generator=g)).square().mean().backward()
        opt.step()

    net, opt = setup(0)
    for s in range(3):
        step(net, opt, s)
    path = save_checkpoint(tmp_path / "o.npz", net, optimizer=opt, epoch=3)
    net2, opt2 = setup(1)
    load_checkpoint(path, net2, opt2)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95)
    step(net, opt, 10)
    step(net2, opt2, 10)
    _assert_bit_identical(net, net2)


def test_shape_dtype_and_key_mismatches(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.npz", nn.Linear(3, 2))
    with pytest.raises(CheckpointError, match=r"weight is float32\[2, 3\] in the checkpoint but "
                                              r"float64\[2, 3\] in the model"):
        load_checkpoint(path, nn.Linear(3, 2).double())
    with pytest.raises(CheckpointError, match=r"weight is float32\[2, 3\] in the checkpoint but "
                                              r"float32\[2, 4\]"):
        load_checkpoint(path, nn.Linear(4, 2))
    with pytest.raises(CheckpointError, match=r"does not fit the model: missing \['0.weight'"):
        load_checkpoint(path, nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(CheckpointError, match="has no optimizer state to resume from"):
        net = nn.Linear(3, 2)
        load_checkpoint(path, net, torch.optim.SGD(net.parameters(), lr=0.1))


def test_tampered_or_missing_files(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.npz", nn.Linear(3, 2))
    other = save_checkpoint(tmp_path / "n.npz", nn.Linear(3, 2))
    os.replace(other, path)  # an npz that is not the one the sidecar describes
    with pytest.raises(CheckpointError, match="does not match its sidecar m.json"):
        load_checkpoint(path, nn.Linear(3, 2))
    sidecar_path(path).unlink()
    with pytest.raises(CheckpointError, match=r"checkpoint file not found: .*m\.json"):
        load_checkpoint(path, nn.Linear(3, 2))
    sidecar_path(path).write_text("{not json")
    with pytest.raises(CheckpointError, match="is not valid JSON"):
        load_checkpoint(path, nn.Linear(3, 2))


def test_bad_save_arguments(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint path must end in .npz"):
        save_checkpoint(tmp_path / "m.pt", nn.Linear(1, 1))
    with pytest.raises(CheckpointError, match="not JSON-serialisable"):
        save_checkpoint(tmp_path / "m.npz", nn.Linear(1, 1), metadata={"x": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no partial files left


def test_atomic_overwrite_leaves_no_temp_files(tmp_path: Path) -> None:
    for seed in range(3):
        torch.manual_seed(seed)
        save_checkpoint(tmp_path / "m.npz", nn.Linear(3, 2), epoch=seed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.npz"]
    assert load_checkpoint(tmp_path / "m.npz", nn.Linear(3, 2))["epoch"] == 2
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o666 & ~umask


def _learned_width_net(x: torch.Tensor) -> nn.Module:
    import qfx
    from qfx.nn import QBatchNorm1d, QConfig, QInput, QLinear, QReLU

    with qfx.config(QConfig(learn_widths=True, width_granularity="channel")):
        net = nn.Sequential(QInput(8), QLinear(16, 12), QBatchNorm1d(12), QReLU(),
                            QLinear(12, 2))
    with qfx.calibration(net):
        net(x)
    return net.eval()


def test_a_held_learned_width_model_round_trips_with_its_held_ranges(tmp_path):
    """The settle phase holds the constants' ranges (buffers that exist only once held): a
    checkpoint of a held model restores its outputs exactly into a fresh one (values past
    the held range still saturate), and a checkpoint without them clears a held model's."""
    from qfx.training.budget import BudgetRegularizer

    torch.manual_seed(0)
    x = torch.randn(64, 16)
    first = _learned_width_net(x)
    plain, plain_out = save_checkpoint(tmp_path / "plain.npz", first), first(x)
    net = _learned_width_net(x)
    BudgetRegularizer(net, x[:2], {"lut": 1e9}).hold(net)
    with torch.no_grad():
        net[1].weight.mul_(8.0)  # past the held ranges: saturates
    out = net(x)
    fresh = _learned_width_net(x)
    assert not torch.equal(fresh(x), out)
    load_checkpoint(save_checkpoint(tmp_path / "held.npz", net), fresh)
    assert torch.equal(fresh(x), out)
    load_checkpoint(plain, fresh)
    assert fresh[1].weight_quantizer.held_range is None
    assert torch.equal(fresh(x), plain_out)
