"""Every zoo model (float formats, K-hot, residual) exports for the Ultra96 and C-simulates with
zero mismatches on random inputs, including inputs scaled to force saturation and wrap."""

import subprocess

import pytest
import torch
from builders import zoo_model

import qfx
from qfx.csim.toolchain import ap_types_include_dir
from qfx.zoo import model_spec


def _synthesis_path_syntax_ok(project) -> None:
    """The arithmetic Vitis synthesises (-DQFX_AP_ARITH: ap_fixed accumulators, K-hot shift-adds)
    must compile too; C-sim above ran the native fast path."""
    fw = project.root / "firmware"
    for src in sorted(fw.glob("*.cpp")):
        proc = subprocess.run(["g++", "-fsyntax-only", "-std=c++14", "-DQFX_AP_ARITH",
                               f"-I{ap_types_include_dir()}", f"-I{fw}", str(src)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[:2000]

CASES = {
    "digits_cnn-8bit": ("digits_cnn", {"bits": 8}),
    "digits_cnn-wrap": ("digits_cnn", {"bits": 6, "act_overflow": "WRAP"}),
    "digits_cnn-khot2": ("digits_cnn", {"bits": 8, "weight_khot": 2}),
    "resnet8-8bit": ("resnet8", {"bits": 8}),
    "resnet20-6bit": ("resnet20", {"bits": 6}),
    "digits_mlp_softmax-8bit": ("digits_mlp_softmax", {"bits": 8}),  # softmax: exp/1/sum ROMs
}


@pytest.mark.parametrize("case", list(CASES))
def test_zoo_model_is_bit_exact_in_csim(case, tmp_path):
    name, quant = CASES[case]
    model, calib = zoo_model(name, quant)
    shape = model_spec(name).input_shape
    project = qfx.export_hls(model, calib[:1], tmp_path / "prj", board="ultra96",
                             reuse=64, on_budget="ignore", test_vectors=calib[:2].numpy())
    x = torch.cat([torch.randn(4, *shape), torch.randn(4, *shape) * 16])  # half saturate
    report = qfx.csim(project, x)
    assert report.bit_exact, str(report)
    assert report.mismatches == 0 and report.samples == 8
    _synthesis_path_syntax_ok(project)


@pytest.mark.parametrize("name", ["digits_bnn", "cnv_w1a1"])
def test_zoo_bnn_is_bit_exact_in_csim(name, tmp_path):
    model, calib = zoo_model(name, None)  # BN statistics, first-batch binary points
    shape = model_spec(name).input_shape
    project = qfx.export_hls(model, calib[:1], tmp_path / "prj", board="ultra96", reuse=64,
                             on_budget="ignore", test_vectors=calib[:2].numpy())
    x = torch.cat([torch.rand(3, *shape), torch.rand(3, *shape) * 4 - 2])  # out of range too
    report = qfx.csim(project, x)
    assert report.bit_exact, str(report)
    _synthesis_path_syntax_ok(project)
