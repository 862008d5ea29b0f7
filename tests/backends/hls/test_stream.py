"""The streaming architecture (io="stream": a DATAFLOW pipeline of pixel FIFOs with line buffers)
computes exactly the bits of the exact executor, like the parallel one.

Each model of test_csim_smoke is exported with io="stream" and compiled with g++: the native
C-simulation path, the ap_fixed path that synthesis compiles (-DQFX_AP_ARITH), the AXI-Stream
wrapper (words pixel by pixel, channels innermost) and the per-node trace, all compared with
`==` on raw integers. Zoo models with residual fan-out, K-hot and binarized layers go through
the public API (qfx.export_hls + qfx.csim)."""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from builders import MODELS, zoo_model
from test_csim_smoke import (
    AP_TYPES,
    SCALES,
    _assert_bit_exact,
    _build,
    _two_port_graph,
    assert_trace_finds_a_corrupted_layer,
)

import qfx
from qfx.backends.hls.layout import wire_order
from qfx.backends.hls.writer import export_firmware
from qfx.zoo import get_model, model_spec


def _export_stream(tmp, model: str, overflow: str, **kw):
    net, x = MODELS[model](overflow)
    graph = qfx.freeze(net.eval(), x[:1])
    xs = np.concatenate([x.numpy()[:8] * s for s in SCALES])
    return export_firmware(graph, tmp / f"{model}_{overflow}", io="stream", test_vectors=xs,
                           **kw), xs


@pytest.mark.parametrize("model, overflow", [("mlp", "SAT"), ("cnn", "WRAP"), ("cnn", "SAT"),
                                             ("residual", "WRAP"), ("wide", "SAT")])
def test_stream_csim_is_bit_exact_on_both_arithmetic_paths(tmp_path, model, overflow):
    prj, _ = _export_stream(tmp_path, model, overflow)
    top = prj.top_source.read_text()
    assert "#pragma HLS DATAFLOW" in top and "hls::stream<" in top
    _assert_bit_exact(prj, _build(prj))
    _assert_bit_exact(prj, _build(prj, "-DQFX_AP_ARITH"))


def test_stream_layers_use_line_buffers_and_clone_fan_out(tmp_path):
    prj, _ = _export_stream(tmp_path, "residual", "SAT")
    top = prj.top_source.read_text()
    # the residual input x feeds two convolutions: cloned into two FIFOs as deep as the tensor
    clones = re.findall(r"qfx::stream::clone<[^>]*, (\d+), (\d+) >", top)
    assert clones == [("4", "36")]
    depths = re.findall(r"#pragma HLS STREAM variable=(\w+) depth=(\d+)", top)
    assert len(depths) == 2 and {d for _, d in depths} == {"36"}
    assert top.count("qfx::stream::conv2d<") == 2
    assert "qfx::stream::flatten<" in top  # [4, 3, 3] -> one pixel of 36 values in NCHW order
    assert (prj.firmware_dir / "qfx_stream.h").is_file()
    assert "static T buf[span][CFG::in_w][IN_C]" in (prj.firmware_dir / "qfx_stream.h").read_text()


def test_stream_axi_wrapper_sends_pixels_channels_innermost(tmp_path):
    prj, xs = _export_stream(tmp_path, "cnn", "WRAP")
    _assert_bit_exact(prj, _build(prj, "-DQFX_TB_AXIS", axis=True))
    assert "pixel by pixel" in prj.axis_header.read_text()
    assert "#pragma HLS DATAFLOW" in prj.axis_source.read_text()
    order = wire_order(prj.inputs[0].shape, "stream")
    c, h, w = prj.inputs[0].shape
    assert order[:3].tolist() == [0, h * w, 2 * h * w]  # the channels of pixel (0, 0) first


def test_stream_several_inputs_and_outputs(tmp_path):
    g = _two_port_graph()
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(20, 2, 3)) * 4, rng.uniform(-1, 3, size=(20, 2, 3))]
    # [C, L] edges stream as L pixels of C values (ops-window, for conv1d)
    # (their C-simulation with several ports is the multi-IO work's test)
    prj = export_firmware(g, tmp_path / "two", io="stream", test_vectors=xs)
    assert [tuple(p.shape) for p in prj.inputs] == [(2, 3), (2, 3)]
    assert "qfx::stream::" in prj.top_source.read_text()


def test_stream_trace_matches_the_executor_and_finds_a_corrupted_layer(tmp_path):
    prj, xs = _export_stream(tmp_path, "residual", "SAT")
    assert_trace_finds_a_corrupted_layer(prj, xs)


ZOO = {
    "resnet8-8bit": ("resnet8", {"bits": 8}),
    "digits_cnn-khot2": ("digits_cnn", {"bits": 8, "weight_khot": 2, "bn_scale_khot": 2}),
}


@pytest.mark.parametrize("case", list(ZOO))
def test_stream_zoo_model_is_bit_exact_through_the_api(case, tmp_path):
    name, quant = ZOO[case]
    model, calib = zoo_model(name, quant)
    shape = model_spec(name).input_shape
    project = qfx.export_hls(model, calib[:1], tmp_path / "prj", board="ultra96", io="stream",
                             reuse=64, on_budget="ignore", test_vectors=calib[:2].numpy())
    assert project.io == "stream"
    x = torch.cat([torch.randn(3, *shape), torch.randn(3, *shape) * 16])
    report = qfx.csim(project, x)
    assert report.bit_exact and report.mismatches == 0 and report.samples == 6, str(report)
    if "khot" in case:  # the shift-add arithmetic that synthesis compiles, run too
        _assert_bit_exact(project, _build(project, "-DQFX_AP_ARITH"))


@pytest.mark.parametrize("name", ["digits_bnn", "cnv_w1a1"])
def test_stream_binarized_zoo_model_is_bit_exact(name, tmp_path):
    model, calib = zoo_model(name, None)  # BN statistics, first-batch binary points
    shape = model_spec(name).input_shape
    project = qfx.export_hls(model, calib[:1], tmp_path / "prj", board="ultra96", io="stream",
                             reuse=64, on_budget="ignore", test_vectors=calib[:2].numpy())
    x = torch.cat([torch.rand(2, *shape), torch.rand(2, *shape) * 4 - 2])
    report = qfx.csim(project, x)
    assert report.bit_exact, str(report)
    if name == "digits_bnn":  # XNOR-popcount on ap_uint words, as synthesis compiles it
        _assert_bit_exact(project, _build(project, "-DQFX_AP_ARITH"))


def _syntax_only(path, fw, *defines: str) -> str:
    cmd = ["g++", "-fsyntax-only", "-std=c++14", "-Wall", "-Wno-unknown-pragmas", *defines,
           f"-I{AP_TYPES}", f"-I{fw}", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    ours = [ln for ln in proc.stderr.splitlines()
            if str(fw.parent) in ln and ("error" in ln or "warning" in ln)]
    return "" if proc.returncode == 0 and not ours else f"{path}: {proc.stderr[-2000:]}"


def test_every_generated_stream_file_passes_syntax_only(tmp_path):
    prj, _ = _export_stream(tmp_path, "cnn", "SAT")
    jobs = [(f, ()) for f in prj.cpp_files]
    jobs += [(prj.tb_source, ("-DQFX_AP_ARITH", "-DQFX_TRACE", "-DQFX_TB_AXIS")),
             (prj.axis_source, ("-DQFX_AP_ARITH",))]
    assert prj.firmware_dir / "qfx_stream.h" in prj.cpp_files
    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [m for m in pool.map(lambda j: _syntax_only(j[0], prj.firmware_dir, *j[1]),
                                        jobs) if m]
    assert not failures, "\n".join(failures)


def test_stream_resnet20_synthesis_path_compiles(tmp_path):
    torch.manual_seed(0)
    calib = torch.randn(8, *model_spec("resnet20").input_shape)
    model = qfx.quantize_model(get_model("resnet20"), {"bits": 6}, calib).eval()
    prj = qfx.export_hls(model, calib[:1], tmp_path / "prj", io="stream", reuse=256,
                         on_budget="ignore", test_vectors=calib[:1].numpy())
    assert prj.top_source.read_text().count("qfx::stream::clone<") == 9  # 9 residual blocks
    assert _syntax_only(prj.axis_source, prj.firmware_dir, "-DQFX_AP_ARITH") == ""
