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

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch.distributed is not available")

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


def test_nproc_from_the_config_trains_and_the_result_exports_bit_exactly(tmp_path):
    config = parse_train_config({**RAW, "out_dir": str(tmp_path / "run")})
    result = run_training(config, progress=False)  # spawns 2 gloo processes
    assert len(result.history) == 1 and result.checkpoint.is_file()
    assert result.final_test_acc > 0.3  # chance is 0.1
    x = get_dataset("digits").test.tensors[0][:8]
    graph = qfx.freeze(result.model, x[:1])
    out = qfx.run_graph(graph, x)
    model_out = result.model.eval()(x)
    assert torch.equal(torch.as_tensor(out.outputs[0]).reshape(model_out.shape),
                       model_out.double())
    project = qfx.export_hls(graph, None, tmp_path / "prj", board="ultra96", reuse=64,
                             on_budget="ignore", test_vectors=x[:2].numpy())
    report = qfx.csim(project, x)
    assert report.bit_exact and report.mismatches == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_nproc_is_validated_at_load(bad):
    with pytest.raises(ConfigError, match="training.nproc"):
        parse_train_config({**RAW, "training": {"nproc": bad}})
