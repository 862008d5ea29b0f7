"""ops-window: MLPerf Tiny's DS-CNN and MobileNetV1-0.25 (96x96 and the 32x32 small-input entry)
quantize, freeze and export for the Ultra96 in the architecture its estimate fits (the 96x96
model only at 4 bits, in the streaming architecture: the report says why 8 bits does not fit);
their SYNTHETIC datasets are labelled as such."""

from __future__ import annotations

import torch

import qfx
from qfx.backends.hls.autofold import autofold
from qfx.backends.hls.estimate import estimate_resources
from qfx.data.registry import get_dataset
from qfx.zoo import get_model, model_spec


def _graph(name: str, bits: int, **options) -> qfx.Graph:
    torch.manual_seed(0)
    calib = torch.randn(4, *model_spec(name).input_shape)
    model = qfx.quantize_model(get_model(name, **options), {"bits": bits}, calib).eval()
    return qfx.freeze(model, calib[:1])


def test_mlperf_tiny_models_and_their_synthetic_data():
    assert model_spec("ds_cnn").input_shape == (1, 49, 10)
    assert model_spec("mobilenet_v1_025").input_shape == (3, 96, 96)
    assert model_spec("mobilenet_v1_025_32").input_shape == (3, 32, 32)
    assert sum(p.numel() for p in get_model("ds_cnn").parameters()) == 23_180
    assert 200_000 < sum(p.numel() for p in get_model("mobilenet_v1_025").parameters()) < 230_000
    kws = get_dataset("synthetic_kws", n=48)
    vww = get_dataset("synthetic_vww", n=16, size=32)
    assert (kws.input_shape, kws.num_classes) == ((1, 49, 10), 12)
    assert vww.input_shape == (3, 32, 32) and all("synthetic" in c for c in vww.classes)
    assert model_spec("ds_cnn").dataset == "synthetic_kws"


def test_mobilenet_96_fits_the_ultra96_streamed_at_4_bits(tmp_path):
    g8 = _graph("mobilenet_v1_025", 8)
    for io in ("parallel", "stream"):  # the most folded 8-bit design is still too big
        rep = estimate_resources(g8, reuse=1 << 30, board="ultra96", io=io)
        assert not rep.fits and rep.over_budget()
    g4 = _graph("mobilenet_v1_025", 4)
    prj = qfx.export_hls(g4, out_dir=tmp_path / "vww96", board="ultra96", io="stream",
                         reuse="auto", test_vectors=2)
    assert prj.report.fits
    assert (prj.root / "firmware").is_dir()


def test_ds_cnn_and_mobilenet_32_fit_the_ultra96():
    ds = autofold(_graph("ds_cnn", 8), "ultra96", io="stream").report
    mb = autofold(_graph("mobilenet_v1_025_32", 8), "ultra96", io="parallel").report
    assert ds.fits and mb.fits


def test_full_size_autoencoder_fits_the_ultra96():
    """MLPerf Tiny's anomaly-detection autoencoder at full size (640 -> 4x128 -> 8 -> 4x128 ->
    640, 8 bits) fits the Ultra96 by estimate in the parallel architecture once folded."""
    rep = autofold(_graph("fc_autoencoder", 8), "ultra96", io="parallel").report
    assert rep.fits
