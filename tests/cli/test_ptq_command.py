"""``qfx ptq``: float ONNX -> frozen qfx model, with a report that labels its calibration data."""

from __future__ import annotations

import io
import warnings

import pytest
import torch

from qfx.cli import main
from qfx.ir import load_graph
from qfx.zoo import get_model


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = get_model("digits_cnn")
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(32, 1, 8, 8) * 0.5)
    model.eval()
    path = tmp_path_factory.mktemp("onnx") / "digits.onnx"
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 1, 8, 8), buf, dynamo=False,
                          training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    path.write_bytes(buf.getvalue())
    return path


def test_ptq_with_noise_is_reported_as_noise(digits_onnx, tmp_path, capsys):
    out = tmp_path / "m.qfx.npz"
    rc = main(["ptq", str(digits_onnx), "-o", str(out), "--calib", "noise",
               "--calib-samples", "32", "--bits", "6", "--eval", "digits"])
    assert rc == 0 and out.is_file()
    text = capsys.readouterr().out
    assert "RANDOM NOISE" in text and "calibrated on noise data" in text
    assert "RANDOM NOISE" in (tmp_path / "m.ptq.md").read_text()
    graph = load_graph(out)
    assert graph.edges[graph.outputs[0]].type.width == 6


def test_ptq_with_digits_and_generated_data(digits_onnx, tmp_path, capsys):
    rc = main(["ptq", str(digits_onnx), "-o", str(tmp_path / "a.qfx.npz"), "--calib",
               "digits", "--calib-samples", "64"])
    assert rc == 0 and "real data" in capsys.readouterr().out
    rc = main(["ptq", str(digits_onnx), "-o", str(tmp_path / "b.qfx.npz"), "--calib",
               "generated", "--calib-samples", "16", "--dgh-iterations", "5"])
    assert rc == 0 and "GENERATED" in capsys.readouterr().out
    assert (tmp_path / "b.generated.npz").is_file()
    rc = main(["ptq", str(digits_onnx), "-o", str(tmp_path / "c.qfx.npz"), "--calib",
               str(tmp_path / "b.generated.npz")])
    assert rc == 0 and "GENERATED" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["ptq", "missing.onnx"], "no such file"),
    (["ptq", "{model}", "--calib", "nowhere"], "--calib nowhere"),
    (["ptq", "{model}", "--bits", "1", "--calib", "noise"], "weight_bits"),
    (["ptq", "{model}", "--config", "{cfg}", "--calib", "noise"], "unknown PTQ option"),
])
def test_bad_input_gives_one_error_line(digits_onnx, tmp_path, capsys, argv, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("no_such_option: 1\n")
    argv = [a.format(model=digits_onnx, cfg=cfg) for a in argv]
    argv += ["-o", str(tmp_path / "x.qfx.npz")]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qfx ptq: error:") and message in err[0]
