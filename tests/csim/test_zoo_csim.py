"""Every zoo model (float formats, K-hot, residual) exports for the Ultra96 and C-simulates with
zero mismatches on random inputs, including inputs scaled to force saturation and wrap."""

import pytest
import torch

import qfx
from qfx.zoo import get_model, model_spec

CASES = {
    "digits_cnn-8bit": ("digits_cnn", {"bits": 8}),
    "digits_cnn-wrap": ("digits_cnn", {"bits": 6, "act_overflow": "WRAP"}),
    "digits_cnn-khot2": ("digits_cnn", {"bits": 8, "weight_khot": 2}),
    "resnet8-8bit": ("resnet8", {"bits": 8}),
    "resnet20-6bit": ("resnet20", {"bits": 6}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_zoo_model_is_bit_exact_in_csim(case, tmp_path):
    name, quant = CASES[case]
    torch.manual_seed(0)
    shape = model_spec(name).input_shape
    calib = torch.randn(64, *shape)
    model = qfx.quantize_model(get_model(name), quant, calib).eval()
    project = qfx.export_hls(model, calib[:1], tmp_path / "prj", board="ultra96",
                             reuse=64, on_budget="ignore", test_vectors=calib[:2].numpy())
    x = torch.cat([torch.randn(4, *shape), torch.randn(4, *shape) * 16])  # half saturate
    report = qfx.csim(project, x)
    assert report.bit_exact, str(report)
    assert report.mismatches == 0 and report.samples == 8
