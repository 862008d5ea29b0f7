"""`qfx freeze` / `qfx info`: a training checkpoint becomes a frozen model whose executor output
equals the restored model's exact eval output."""

import numpy as np
import pytest
import torch

from qfx.cli import main
from qfx.ir import load_graph, run_graph
from qfx.training.config import parse_train_config, restore_model, run_training


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = parse_train_config({
        "dataset": {"name": "synthetic", "n": 128, "shape": [1, 8, 8]},
        "model": "digits_cnn", "training": {"epochs": 1, "batch_size": 32},
        "quantization": {"bits": 6}, "out_dir": str(out)})
    return run_training(cfg, progress=False).checkpoint


def test_freeze_cli_writes_an_exact_frozen_model(checkpoint, tmp_path, capsys):
    out = tmp_path / "m.qfx.npz"
    assert main(["freeze", str(checkpoint), "-o", str(out)]) == 0
    assert "frozen model written" in capsys.readouterr().out
    graph = load_graph(out)
    model, _ = restore_model(checkpoint)
    x = torch.rand(20, 1, 8, 8) * 3
    with torch.no_grad():
        expected = model.eval()(x)
    t = graph.edges[graph.outputs[0]].type
    assert np.array_equal(t.to_int(expected).numpy(), run_graph(graph, x).raw[0])
    # refuses to overwrite, one-line error, exit 2
    assert main(["freeze", str(checkpoint), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["info", str(out)]) == 0
    assert "conv2d" in capsys.readouterr().out


def test_freeze_cli_folds_thresholds_on_request(checkpoint, tmp_path):
    out = tmp_path / "mt.qfx.npz"
    assert main(["freeze", str(checkpoint), "-o", str(out), "--fold-thresholds"]) == 0
    graph = load_graph(out)
    ops = [n.op for n in graph.nodes]
    assert "multithreshold" in ops and "batchnorm" not in ops
    model, _ = restore_model(checkpoint)
    x = torch.cat([torch.rand(20, 1, 8, 8) * 3, torch.randn(20, 1, 8, 8) * 16])
    with torch.no_grad():
        expected = model.eval()(x)
    t = graph.edges[graph.outputs[0]].type
    assert np.array_equal(t.to_int(expected).numpy(), run_graph(graph, x).raw[0])


def test_info_rejects_files_that_are_not_models(tmp_path, capsys):
    bogus = tmp_path / "x.npz"
    np.savez(bogus, a=np.zeros(2))
    assert main(["info", str(bogus)]) == 2
    assert "neither a frozen qfx model" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.npz")]) == 2
