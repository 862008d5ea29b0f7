"""The K-hot and BNN digits flows end to end (1 epoch, a few dozen C-sim samples): trained,
frozen, exported for the Ultra96 within its estimated budget, and C-simulated bit-exactly
(`==` on raw outputs). A zoo model built from qfx layers (digits_bnn) needs no
`quantization:` section and is recorded as quantized; a float model still needs one."""

import json

import pytest

from qfx.flows.flow import load_flow, run_flow
from qfx.training.checkpoint import read_checkpoint
from qfx.training.config import ConfigError, parse_train_config, restore_model

SAMPLES = 36


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("QFX_CACHE_DIR", str(tmp_path / "cache"))  # a fresh C-sim build cache


def _run(flow: str, out):
    spec = load_flow(flow)
    spec.csim["samples"] = SAMPLES
    spec.criteria.pop("min_accuracy", None)  # exactness does not need a trained model
    return spec, run_flow(spec, out_dir=out, epochs=1, progress=False)


def _assert_exact(result) -> None:
    assert [s.status for s in result.stages][:4] == ["passed"] * 4, \
        [(s.name, s.message) for s in result.stages]
    assert result.metrics["bit_exact"] is True and result.metrics["csim_mismatches"] == 0
    assert result.metrics["csim_samples"] == SAMPLES
    crit = {c.name: c.passed for c in result.criteria}
    assert crit == {"bit_exact": True, "fits_board": True}
    assert result.ok


def test_khot_flow_is_shift_add_and_bit_exact(tmp_path):
    spec, r = _run("flows/digits-khot-ultra96.yaml", tmp_path / "khot")
    assert spec.train.quantization == {"bits": 8, "weight_khot": 2, "bn_scale_khot": 2}
    _assert_exact(r)
    top = (r.out_dir / "hls" / "firmware" / "qfx_model.cpp").read_text()
    assert "qfx::conv2d_khot<" in top and "qfx::dense_khot<" in top
    assert "qfx::batchnorm_khot<" in top
    layers = json.loads((r.out_dir / "hls" / "report.json").read_text())["layers"]
    khot = [x for x in layers if x["op"] in ("conv2d", "dense", "batchnorm")]
    assert khot and all(x["mult_impl"] == "shift-add" and x["estimate"]["dsp"] == 0
                        for x in khot)  # K-hot weights and BN scales: shifts and adds only
    assert sum(x["estimate"]["dsp"] for x in layers) == 0  # the whole model: 0 DSP


def test_bnn_flow_needs_no_quantization_section_and_is_bit_exact(tmp_path):
    spec, r = _run("flows/digits-bnn-ultra96.yaml", tmp_path / "bnn")
    assert spec.train.quantization is None
    _assert_exact(r)
    layers = json.loads((r.out_dir / "hls" / "report.json").read_text())["layers"]
    assert sum(x["estimate"]["dsp"] for x in layers if x["op"] != "dense") == 0
    top = (r.out_dir / "hls" / "firmware" / "qfx_model.cpp").read_text()
    for func in ("thermometer", "binary_conv2d", "threshold", "binary_dense"):
        assert f"qfx::{func}<" in top
    ckpt = spec.train.out_dir / "checkpoint.npz"
    side, _ = read_checkpoint(ckpt)
    assert side["metadata"]["quantized"] is True
    model, _ = restore_model(ckpt)  # a qfx-kind model is rebuilt as is (no quantize_model)
    assert type(model.conv2).__name__ == "QBinaryConv2d"


def test_quantization_section_rules():
    with pytest.raises(ValueError, match="quantization"):
        load_flow({"dataset": "digits", "model": "digits_cnn"})  # float model: still required
    with pytest.raises(ValueError, match="already"):
        load_flow({"dataset": "digits", "model": "digits_bnn", "quantization": {"bits": 8}})
    assert load_flow({"dataset": "digits", "model": "digits_bnn"}).train.quantization is None
    from qfx.training.config import _build_model

    cfg = parse_train_config({"dataset": "digits", "model": "digits_bnn",
                              "quantization": {"bits": 8}})
    with pytest.raises(ConfigError, match="already quantized"):
        _build_model(cfg, print)
