"""``qfx import MODEL.onnx -o MODEL.qfx.npz`` and ``qfx export MODEL.onnx``: (Q)ONNX files on the
command line. A QONNX round trip computes the same raw integers (==) as the original graph; a
file that is not an ONNX model is one error line, a non-zero exit status and nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx.cli import main
from qfx.ir import load_graph, run_graph
from qfx.nn import QConv2d, QFlatten, QInput, QLinear, QMaxPool2d, QReLU

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graph() -> qfx.Graph:
    torch.manual_seed(7)
    net = nn.Sequential(QInput(8), QConv2d(1, 3, 3, padding=1), QReLU(), QMaxPool2d(2),
                        QFlatten(), QLinear(12, 4))
    x = torch.randn(32, 1, 4, 4) * 2
    net.train()
    with qfx.calibration(net):
        net(x)
    return qfx.freeze(net.eval(), x[:1])


@pytest.fixture(scope="module")
def qonnx_file(graph, tmp_path_factory) -> Path:
    return qfx.export_qonnx(graph, tmp_path_factory.mktemp("onnx") / "m.onnx")


def _inputs(graph: qfx.Graph) -> np.ndarray:
    shape = graph.edges[graph.inputs[0]].shape
    rng = np.random.default_rng(0)
    return rng.standard_normal((64, *shape)) * np.repeat([1.0, 16.0], 32)[:, None, None, None]


def test_import_round_trip_is_identical(graph, qonnx_file, tmp_path, capsys):
    out = tmp_path / "back.qfx.npz"
    assert main(["import", str(qonnx_file), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"frozen model written to {out}" in text
    back = load_graph(out)
    x = _inputs(graph)
    a, b = run_graph(graph, x), run_graph(back, x)
    assert len(a.raw) == len(b.raw) == 1
    assert a.raw[0].dtype == b.raw[0].dtype and (a.raw[0] == b.raw[0]).all()
    assert (a.outputs[0] == b.outputs[0]).all()
    # an existing output needs --force
    assert main(["import", str(qonnx_file), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qfx import: error:") and "--force" in err and err.count("\n") == 1
    assert main(["import", str(qonnx_file), "-o", str(out), "--force"]) == 0


def test_import_default_output_name(qonnx_file, tmp_path, capsys):
    src = tmp_path / "net.onnx"
    src.write_bytes(qonnx_file.read_bytes())
    assert main(["import", str(src)]) == 0
    assert (tmp_path / "net.qfx.npz").is_file()


def test_export_takes_an_onnx_file(graph, qonnx_file, tmp_path, capsys):
    out = tmp_path / "prj"
    assert main(["export", str(qonnx_file), "--board", "ultra96", "-o", str(out),
                 "--samples", "3"]) == 0
    assert "ESTIMATE" in capsys.readouterr().out
    manifest = json.loads((out / "project.json").read_text())
    assert manifest["export"]["board"] == "ultra96v2"
    for name in ("build_prj.tcl", "vivado_bd.tcl", "driver.py", "report.md", "model.qfx.npz"):
        assert (out / name).is_file(), name
    # the project's model is the imported graph, computing what the original computes
    x = _inputs(graph)
    assert (run_graph(load_graph(out / "model.qfx.npz"), x).raw[0]
            == run_graph(graph, x).raw[0]).all()


@pytest.mark.parametrize("content", [b"this is not an onnx model\n", b""])
def test_a_bad_file_is_one_error_line_and_writes_nothing(content, tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    before = sorted(tmp_path.iterdir())
    assert main(["import", str(bad), "-o", str(tmp_path / "bad.qfx.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qfx import: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert main(["export", str(bad), "--board", "ultra96", "-o", str(tmp_path / "prj")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qfx export: error:") and err.count("\n") == 1, err
    assert sorted(tmp_path.iterdir()) == before


def test_a_missing_file(tmp_path, capsys):
    assert main(["import", str(tmp_path / "none.onnx"), "-o", str(tmp_path / "o.qfx.npz")]) == 2
    err = capsys.readouterr().err
    assert "no ONNX file" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_the_console_script_entry_point_lists_import():
    proc = subprocess.run([sys.executable, "-m", "qfx", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "import" in proc.stdout and "export" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "qfx", "import-onnx", "x"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_import_prunes_a_dead_channel_unless_no_prune(tmp_path, capsys):
    """A qfx model frozen without pruning (channel 1 of the conv: zero weights and bias) and
    exported to QONNX: ``qfx import`` drops the channel, ``--no-prune`` keeps it; both compare
    equal with the source (qonnx) and compute the same raw integers."""
    torch.manual_seed(8)
    net = nn.Sequential(QInput(8), QConv2d(1, 3, 3, padding=1), QReLU(), QFlatten(),
                        QLinear(48, 2))
    with torch.no_grad():
        net[1].weight[1] = 0.0
        net[1].bias[1] = 0.0
    x = torch.randn(32, 1, 4, 4) * 2
    with qfx.calibration(net):
        net(x)
    full = qfx.freeze(net.eval(), x[:1], prune=False)
    src = qfx.export_qonnx(full, tmp_path / "dead.onnx")
    shapes = {}
    for flag in ([], ["--no-prune"]):
        out = tmp_path / f"m{len(flag)}.qfx.npz"
        assert main(["import", str(src), "-o", str(out), *flag]) == 0
        assert "qfx == qonnx on 8 random samples" in capsys.readouterr().out
        back = load_graph(out)
        conv = next(n for n in back.nodes if n.op == "conv2d")
        shapes[bool(flag)] = back.edges[conv.output].shape[0]
        xs = _inputs(full)
        assert (run_graph(back, xs).raw[0] == run_graph(full, xs).raw[0]).all()
    assert shapes == {False: 2, True: 3}
