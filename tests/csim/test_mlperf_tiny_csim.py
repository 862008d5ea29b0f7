"""ops-window: the small MLPerf Tiny variants C-simulate bit-exactly in the architecture their
Ultra96 estimate fits: DS-CNN (1x49x10, 8 channels, 2 blocks) streamed, MobileNetV1-0.25 at
32x32 (all 13 blocks) and the fully-connected autoencoder (640 in and out, 32-wide hidden
layers) in the parallel architecture; random and saturating inputs. DS-CNN is also proven on
the synthesis arithmetic (-DQFX_AP_ARITH) path."""

from __future__ import annotations

import pytest
import torch

import qfx
from qfx.zoo import get_model, model_spec

CASES = {"ds_cnn": ("ds_cnn", {"channels": 8, "blocks": 2}, "stream", 64),
         "mobilenet_v1_025_32": ("mobilenet_v1_025_32", {}, "parallel", 256),
         # the anomaly-detection autoencoder: 640 inputs and outputs, narrower hidden layers
         "fc_autoencoder": ("fc_autoencoder", {"hidden": 32, "depth": 2}, "parallel", "auto")}
# the case also proven on the synthesis arithmetic path (-DQFX_AP_ARITH): the smallest, whose
# ap_fixed build costs least (MobileNet's would add about a minute)
SYNTH_PATH = ("ds_cnn",)


@pytest.mark.parametrize("case", list(CASES))
def test_small_mlperf_tiny_variant_is_bit_exact(case, tmp_path):
    name, options, io, reuse = CASES[case]
    shape = model_spec(name).input_shape
    torch.manual_seed(0)
    calib = torch.randn(16, *shape)
    model = qfx.quantize_model(get_model(name, **options), {"bits": 8}, calib).eval()
    project = qfx.export_hls(model, calib[:1], tmp_path / "prj", board="ultra96", io=io,
                             reuse=reuse, test_vectors=calib[:2].numpy())
    assert project.report.fits
    x = torch.cat([torch.randn(2, *shape), torch.randn(2, *shape) * 16])  # half saturate
    x = x[[0, 2, 1, 3]]  # the first two: one random, one saturating
    # the synthesis arithmetic (-DQFX_AP_ARITH, what Vitis compiles) on the smallest variants,
    # on the first two samples (one random, one saturating); its compile is the cost, so it
    # builds at -O0 (about 30 % faster to compile than -O3 for the same semantics)
    arith, opt = ("both", "-O0") if case in SYNTH_PATH else ("native", "-O3")
    report = qfx.csim(project, x, arith=arith, synth_samples=2, opt=opt)
    assert report.bit_exact and report.mismatches == 0 and report.samples == 4, str(report)
    assert report.proven == ({"native": 4, "synth": 2} if arith == "both" else {"native": 4})
