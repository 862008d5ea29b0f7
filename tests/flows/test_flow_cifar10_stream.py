"""The CIFAR-10 ResNet-8 flow end to end on a tiny CIFAR-10 folder that the test writes in the
standard python-pickle format (no dataset can be downloaded here): trained one epoch, frozen,
exported with the streaming architecture (io=stream, DATAFLOW) within the Ultra96-V2's estimated
budget, and C-simulated bit-exactly (`==` on raw outputs)."""

import json
import pickle

import numpy as np
import pytest

from qfx.flows.flow import load_flow, run_flow

SAMPLES = 8


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("QFX_CACHE_DIR", str(tmp_path / "cache"))


def _write_cifar(root, n: int = 16) -> None:
    """data_batch_1..5 and test_batch: {b"data": uint8 [n, 3072] (R, G, B planes), b"labels"}."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, size=n).tolist()}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)]}
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def test_cifar10_resnet8_flow_streams_fits_and_is_bit_exact(tmp_path):
    data = tmp_path / "cifar-10-batches-py"
    _write_cifar(data)
    spec = load_flow("flows/cifar10-resnet8-ultra96.yaml")
    assert spec.export["io"] == "stream"
    spec.csim["samples"] = SAMPLES
    spec.criteria.pop("min_accuracy", None)  # random pictures: exactness, not accuracy
    r = run_flow(spec, out_dir=tmp_path / "run", epochs=1, progress=False, data_root=str(data))
    assert [s.status for s in r.stages][:4] == ["passed"] * 4, \
        [(s.name, s.message) for s in r.stages]
    assert r.metrics["bit_exact"] is True and r.metrics["csim_mismatches"] == 0
    assert {c.name: c.passed for c in r.criteria} == {"bit_exact": True, "fits_board": True}
    report = json.loads((r.out_dir / "hls" / "report.json").read_text())
    assert report["io"] == "stream" and report["fits_estimate"] is True
    top = (r.out_dir / "hls" / "firmware" / "qfx_model.cpp").read_text()
    assert "#pragma HLS DATAFLOW" in top and top.count("qfx::stream::clone<") == 3
