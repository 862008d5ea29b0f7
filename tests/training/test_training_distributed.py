"""Distributed data-parallel training (issue #14): a 2-process gloo run on the CPU.

One epoch of the quantized digits CNN under DistributedDataParallel: every rank holds the
same calibrated and the same learned binary points (and weights), exactly one checkpoint is
written (by rank 0), the launcher rebuilds the trained model from it, and the frozen graph of
the result runs and C-simulates bit-exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import qfx
from qfx.data.registry import get_dataset
from qfx.training import distributed as qdist
from qfx.training.config import ConfigError, parse_train_config, run_training

RAW = {"name": "ddp", "dataset": "digits", "model": "digits_cnn",
       "quantization": {"bits": 8},
       "training": {"epochs": 1, "batch_size": 64, "lr": 0.01, "nproc": 2, "seed": 3}}


def _rank_worker(out_dir: str) -> None:
    """One rank, torchrun style: train, then record this rank's formats and weights."""
    config = parse_train_config({**RAW, "out_dir": out_dir})
    result = run_training(config, progress=False)
    rank, size = qdist.world()
    state = {k: v.detach().double().reshape(-1).tolist()
             for k, v in result.model.state_dict().items() if v.is_floating_point()}
    record = {"world": size, "initial": result.metadata["initial_int_bits"],
              "final": result.history[-1]["int_bits"], "state": state,
              "train_loss": result.history[-1]["train_loss"]}
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(record))


def test_two_process_gloo_run_keeps_ranks_identical(tmp_path):
    out = tmp_path / "run"
    qdist.launch(_rank_worker, 2, (str(out),), threads=1)
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["initial"] and r0["initial"] == r1["initial"]  # same calibrated formats
    assert r0["final"] == r1["final"]  # same learned formats
    assert r0["state"] == r1["state"]  # every weight, binary point and BN statistic
    assert r0["train_loss"] == r1["train_loss"]  # the epoch's loss over both shards
    assert r0["initial"] != r0["final"] or r0["state"]  # something was trained
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("rank"))
    assert written == ["checkpoint.json", "checkpoint.npz", "history.json", "training.png"]


def test_nproc_trains_resumes_from_the_cli_and_exports_bit_exactly(tmp_path, capsys):
    import yaml

    from qfx.cli.train import main
    from qfx.training.config import restore_model

    out = tmp_path / "run"
    config = parse_train_config({**RAW, "out_dir": str(out)})
    result = run_training(config, progress=False)  # spawns 2 gloo processes
    assert len(result.history) == 1 and result.checkpoint.is_file()
    assert result.final_test_acc > 0.3  # chance is 0.1
    first = result.history[0]

    # Resume the same run for a second epoch through the CLI: qfx train FLOW --nproc 2 --resume
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump({**RAW, "training": {**RAW["training"], "nproc": 1}}))
    assert main(["train", str(flow), "--nproc", "2", "--epochs", "2", "--out-dir", str(out),
                 "--resume", str(result.checkpoint), "--no-progress"]) == 0
    assert "trained digits_cnn" in capsys.readouterr().out
    history = json.loads((out / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2] and history[0] == first
    model, side = restore_model(out / "checkpoint.npz")
    assert side["epoch"] == 2

    x = get_dataset("digits").test.tensors[0][:8]
    graph = qfx.freeze(model, x[:1])
    ran = qfx.run_graph(graph, x)
    model_out = model.eval()(x)
    assert torch.equal(torch.as_tensor(ran.outputs[0]).reshape(model_out.shape),
                       model_out.double())
    project = qfx.export_hls(graph, None, tmp_path / "prj", board="ultra96", reuse=64,
                             on_budget="ignore", test_vectors=x[:2].numpy())
    report = qfx.csim(project, x)
    assert report.bit_exact and report.mismatches == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_nproc_is_validated_at_load(bad):
    with pytest.raises(ConfigError, match="training.nproc"):
        parse_train_config({**RAW, "training": {"nproc": bad}})


def _syncbn_worker(out_dir: str) -> None:
    """Each rank normalises its half of a batch with synchronised statistics."""
    from qfx.nn import QBatchNorm2d, sync_batchnorm

    qdist.init_from_env("cpu")
    rank, _ = qdist.world()
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4) * 2 + 1
    bn = QBatchNorm2d(3)
    with qfx.calibration(bn):
        bn(x)
    sync_batchnorm(bn)
    xs = x[4 * rank:4 * rank + 4].clone().requires_grad_(True)
    y = bn.train()(xs)
    (y * torch.arange(y.numel()).reshape(y.shape).sin()).sum().backward()
    torch.save({"y": y.detach(), "gx": xs.grad, "mean": bn.running_mean,
                "var": bn.running_var}, Path(out_dir) / f"bn{rank}.pt")


def test_sync_batchnorm_equals_batchnorm_on_the_whole_batch(tmp_path):
    """SyncBatchNorm semantics: two ranks with half a batch each compute the outputs, input
    gradients and running statistics of one process with the whole batch (float32
    reductions in a different order: a tolerance of a few ulps)."""
    from qfx.nn import QBatchNorm2d

    qdist.launch(_syncbn_worker, 2, (str(tmp_path),), threads=1)
    parts = [torch.load(tmp_path / f"bn{r}.pt", weights_only=True) for r in (0, 1)]
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4) * 2 + 1
    bn = QBatchNorm2d(3)
    with qfx.calibration(bn):
        bn(x)
    xg = x.clone().requires_grad_(True)
    y = bn.train()(xg)
    w = torch.arange(y[:4].numel()).reshape(y[:4].shape).sin()
    ((y[:4] * w).sum() + (y[4:] * w).sum()).backward()
    assert torch.allclose(torch.cat([p["y"] for p in parts]), y.detach(), atol=1e-5)
    assert torch.allclose(torch.cat([p["gx"] for p in parts]), xg.grad, atol=1e-4)
    for p in parts:
        assert torch.allclose(p["mean"], bn.running_mean, atol=1e-6)
        assert torch.allclose(p["var"], bn.running_var, atol=1e-5)


def test_nproc_trains_to_a_budget_through_the_settle_phase_from_the_cli(tmp_path):
    """qfx train FLOW --nproc 2 with a resource budget: the ranks train against the flow's
    export estimate (a picklable measure reaches them), the settle phase holds formats under
    DistributedDataParallel (wrapped again: the held formats get no gradient), and the
    result fits the budget in the export estimate's units."""
    import yaml

    from qfx.cli.train import main
    from qfx.flows.measure import estimate_measure
    from qfx.training.config import restore_model

    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump({
        "name": "ddp-budget", "dataset": {"name": "synthetic", "n": 256, "shape": [1, 8, 8]},
        "model": "digits_cnn", "quantization": {"bits": 4, "learn_widths": True},
        "training": {"epochs": 4, "batch_size": 32, "seed": 1,
                     "budget": {"board": "ultra96", "lut_equiv": 0.1}},
        "export": {"reuse": 16}}))
    out = tmp_path / "run"
    assert main(["train", str(flow), "--nproc", "2", "--out-dir", str(out),
                 "--no-progress"]) == 0
    last = json.loads((out / "history.json").read_text())[-1]
    assert last["fits_budget"] and "budget_guarantee" in last
    assert last["budget"] == {"lut_equiv": pytest.approx(0.1 * (70560 + 55 * 360))}
    model, _ = restore_model(out / "checkpoint.npz")
    x = get_dataset("synthetic", n=256, shape=(1, 8, 8)).test.tensors[0][:1]
    exact = estimate_measure(board="ultra96", reuse=16)(model, x).total
    assert exact["lut_equiv"] == last["resources"]["lut_equiv"] <= last["budget"]["lut_equiv"]
