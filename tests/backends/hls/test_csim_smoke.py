"""Compile the exported firmware + testbench with g++ and the ap_types headers, run it, and
compare the raw outputs with the exact executor (`==` on raw integers, zero mismatches).

Covers an MLP (QInput, QLinear, QReLU, QHardTanh), a conv net (stride/padding/dilation/groups
incl. depthwise, BatchNorm, max pool with padding, 3x3 average pools, global average pool,
flatten, linear) and a residual net (QAdd of branches with different formats); per-channel
weights; SAT, WRAP (and SAT_SYM with RND_CONV) overflow; inputs x1, x16, x256 so that the input
cast and the layers saturate/wrap. Both arithmetic paths of qfx_layers.h are built: the native
C-simulation path (default) and the ap_fixed path that synthesis uses (-DQFX_AP_ARITH). Also:
the AXI-Stream wrapper, the per-node trace, `g++ -fsyntax-only` of every generated file, and the
compile time / C-sim throughput of a ResNet-8-sized model.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import MODELS
from torch import nn

import qfx
from qfx.backends.hls.layout import read_trace, read_vectors, write_vectors
from qfx.backends.hls.project import HLSProject
from qfx.backends.hls.writer import export_firmware
from qfx.csim.toolchain import CompileError, ap_types_include_dir, compile_cpp
from qfx.ir import run_graph

FLAGS = ("-O2", "-std=c++14", "-DNDEBUG")
SCALES = (1.0, 16.0, 256.0)


AP_TYPES = ap_types_include_dir()  # hls4ml (a required dependency) ships the headers


# ---------------------------------------------------------------------------- helpers
def _export(tmp: Path, model: str, overflow: str, **kw) -> tuple[HLSProject, np.ndarray]:
    net, x = MODELS[model](overflow, **kw)
    graph = qfx.freeze(net.eval(), x[:1])
    xs = np.concatenate([x.numpy() * s for s in SCALES])
    prj = export_firmware(graph, tmp / f"{model}_{overflow}", test_vectors=xs)
    # the scaled inputs really overflow the input format (and so exercise SAT/WRAP)
    res = run_graph(graph, xs)
    assert res.overflow[graph.nodes[0].name] > 0
    return prj, xs


def _build(prj: HLSProject, *defines: str, axis: bool = False) -> Path:
    sources = [prj.tb_source, *(prj.axis_sources if axis else prj.sources)]
    tag = "".join(d.lower().replace("-dqfx_", "_") for d in defines) or "_native"
    return compile_cpp(sources, prj.root / "build" / f"tb{tag}",
                       include_dirs=[AP_TYPES, *prj.include_dirs], flags=[*FLAGS, *defines],
                       timeout=300)


def _run(exe: Path, prj: HLSProject, inputs: Path, *extra: str) -> tuple[np.ndarray, str]:
    out = prj.root / f"out_{exe.name}.txt"
    proc = subprocess.run([str(exe), str(inputs), str(out), *extra], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return read_vectors(out), proc.stdout


def _reference(prj: HLSProject) -> np.ndarray:
    """Raw outputs of the exact executor on exactly the testbench's input values."""
    g = prj.graph
    raw_in = read_vectors(prj.input_vectors)
    t = g.edges[g.inputs[0]].type
    res = run_graph(g, t.from_int(raw_in.reshape(-1, *g.edges[g.inputs[0]].shape)))
    return res.raw[0].reshape(len(raw_in), -1)


def _assert_bit_exact(prj: HLSProject, exe: Path) -> None:
    got, stdout = _run(exe, prj, prj.input_vectors, str(prj.expected_vectors))
    ref = _reference(prj)
    assert got.dtype == np.int64 and got.shape == ref.shape
    assert np.array_equal(got, ref), f"{int((got != ref).sum())} mismatching outputs"
    assert f"{len(ref)} samples, 0 mismatches" in stdout


# ---------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("model, overflow, ap_arith", [
    ("mlp", "SAT", True), ("mlp", "WRAP", False),
    ("cnn", "SAT", True), ("cnn", "WRAP", False),
    ("residual", "SAT", False), ("residual", "WRAP", True), ("wide", "SAT", True),
])
def test_csim_is_bit_exact(tmp_path, model, overflow, ap_arith):
    prj, _ = _export(tmp_path, model, overflow)
    if model == "wide":
        assert max(n.attrs["acc_type"].width for n in prj.graph.nodes if "acc_type" in n.attrs
                   and n.op in ("dense", "conv2d")) > 31
    _assert_bit_exact(prj, _build(prj))
    if ap_arith:  # the ap_fixed path that synthesis compiles gives the same bits
        _assert_bit_exact(prj, _build(prj, "-DQFX_AP_ARITH"))


def test_csim_sat_sym_and_convergent_rounding_are_bit_exact(tmp_path):
    prj, _ = _export(tmp_path, "mlp", "SAT_SYM", rounding="RND_CONV")
    _assert_bit_exact(prj, _build(prj))


def test_axi_stream_wrapper_is_bit_exact(tmp_path):
    prj, _ = _export(tmp_path, "cnn", "WRAP")
    _assert_bit_exact(prj, _build(prj, "-DQFX_TB_AXIS", axis=True))
    assert "ONE element per word" in prj.axis_header.read_text()


def _two_port_graph() -> qfx.Graph:
    """A hand-built IR graph with two inputs and two outputs (one of them also feeds a node)."""
    from qfx.ir.graph import Edge, Graph, Node

    ta, tb = qfx.FixedType(8, 3, rounding="RND", overflow="SAT"), qfx.FixedType(6, 1, False)
    g = Graph(inputs=["a", "b"], outputs=["sum", "qb"])
    for name, shape, t in [("a", (2, 3), ta), ("b", (2, 3), tb), ("qa", (2, 3), ta),
                           ("qb", (2, 3), tb),
                           ("sum", (2, 3), qfx.FixedType(5, 2, overflow="WRAP_SM"))]:
        g.add_edge(Edge(name, shape, t))
    g.add_node(Node("qa", "input", ["a"], "qa"))
    g.add_node(Node("qb", "input", ["b"], "qb"))
    g.add_node(Node("sum", "add", ["qa", "qb"], "sum", {"acc_type": qfx.FixedType.add(ta, tb)}))
    return g


def test_several_inputs_and_outputs_plain_and_axi_stream(tmp_path):
    g = _two_port_graph()
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(40, 2, 3)) * 4, rng.uniform(-1, 3, size=(40, 2, 3))]
    prj = export_firmware(g, tmp_path / "two", project_name="two", test_vectors=xs,
                          axis_width=32)
    assert [p.name for p in prj.inputs] == ["in_a", "in_b"]
    assert [p.name for p in prj.outputs] == ["out_sum", "out_qb"]
    raw = [g.edges[n].type.to_int(x) for n, x in zip(g.inputs, xs, strict=True)]
    ref = run_graph(g, [g.edges[n].type.from_int(r) for n, r in zip(g.inputs, raw, strict=True)])
    expected = np.concatenate([r.reshape(40, -1) for r in ref.raw], axis=1)
    assert np.array_equal(read_vectors(prj.input_vectors),
                          np.concatenate([r.reshape(40, -1) for r in raw], axis=1))
    for exe in (_build(prj), _build(prj, "-DQFX_TB_AXIS", axis=True)):
        got, stdout = _run(exe, prj, prj.input_vectors, str(prj.expected_vectors))
        assert np.array_equal(got, expected) and "40 samples, 0 mismatches" in stdout


def assert_trace_finds_a_corrupted_layer(prj: HLSProject, xs: np.ndarray) -> None:
    """The -DQFX_TRACE build of ``prj`` (the residual net) traces every node exactly as the
    executor; after one weight of the 1x1 residual conv is changed, that conv is the first node
    whose trace differs."""
    g = prj.graph
    exe = _build(prj, "-DQFX_TRACE")
    trace_file = prj.root / "trace.txt"
    _run(exe, prj, prj.input_vectors, "-", str(trace_file))
    trace = read_trace(trace_file)
    t = g.edges[g.inputs[0]].type
    raw_in = read_vectors(prj.input_vectors).reshape(xs.shape)
    ref = run_graph(g, t.from_int(raw_in), trace=True).trace
    assert list(trace) == [n.name for n in g.nodes]
    for name, values in ref.items():
        assert np.array_equal(trace[name], values.reshape(len(xs), -1)), name

    # corrupt one weight of the residual branch: the trace names that layer first
    node = next(n for n in g.nodes if n.op == "conv2d" and n.params["weight"].shape[-1] == 1)
    header = prj.weights_dir / f"{node.name}_w.h"
    text = header.read_text()
    head, body = text.split("= {", 1)
    first = re.search(r"-?\d+", body)
    value = int(first.group())
    body = body[:first.start()] + str(value + 1 if value < 0 else value - 1) + body[first.end():]
    header.write_text(head + "= {" + body)
    _run(_build(prj, "-DQFX_TRACE"), prj, prj.input_vectors, "-", str(trace_file))
    trace = read_trace(trace_file)
    diverging = [n.name for n in g.nodes
                 if not np.array_equal(trace[n.name], ref[n.name].reshape(len(xs), -1))]
    assert diverging and diverging[0] == node.name


def test_trace_matches_the_executor_and_finds_a_corrupted_layer(tmp_path):
    prj, xs = _export(tmp_path, "residual", "SAT")
    assert_trace_finds_a_corrupted_layer(prj, xs)


def test_testbench_rejects_bad_vectors(tmp_path):
    prj, _ = _export(tmp_path, "mlp", "WRAP")
    exe = _build(prj)
    t = prj.inputs[0].type
    bad = write_vectors(tmp_path / "bad.txt", np.full((1, prj.inputs[0].size), t.raw_max + 1))
    proc = subprocess.run([str(exe), str(bad), str(tmp_path / "o.txt"), "-"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "is not a raw" in proc.stderr
    short = write_vectors(tmp_path / "short.txt", np.zeros((1, 3), dtype=np.int64))
    proc = subprocess.run([str(exe), str(short), str(tmp_path / "o.txt"), "-"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "expected 10" in proc.stderr
    # a wrong expected file is reported as a mismatch (exit status 1)
    wrong = read_vectors(prj.expected_vectors)
    wrong[0, 0] += 1
    exp = write_vectors(tmp_path / "wrong.txt", wrong)
    proc = subprocess.run([str(exe), str(prj.input_vectors), str(tmp_path / "o.txt"), str(exp)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and ", 1 mismatches" in proc.stdout


# ---------------------------------------------------------------------------- syntax
def test_every_generated_file_passes_syntax_only(tmp_path):
    prj, _ = _export(tmp_path, "mlp", "SAT")
    jobs = [(f, ()) for f in prj.cpp_files]
    jobs += [(prj.tb_source, ("-DQFX_AP_ARITH", "-DQFX_TRACE", "-DQFX_TB_AXIS")),
             (prj.axis_source, ("-DQFX_AP_ARITH",))]

    def check(job: tuple[Path, tuple[str, ...]]) -> str:
        path, defines = job
        cmd = ["g++", "-fsyntax-only", "-std=c++14", "-Wall", "-Wno-unknown-pragmas", *defines,
               f"-I{AP_TYPES}", f"-I{prj.firmware_dir}", str(path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        ours = [ln for ln in proc.stderr.splitlines()
                if str(prj.root) in ln and ("error" in ln or "warning" in ln)]
        return "" if proc.returncode == 0 and not ours else f"{path}: {proc.stderr[-2000:]}"

    assert len(prj.cpp_files) == 14  # 7 firmware files, 6 weight headers, the testbench
    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [msg for msg in pool.map(check, jobs) if msg]
    assert not failures, "\n".join(failures)


def test_compile_errors_name_the_file(tmp_path):
    prj, _ = _export(tmp_path, "mlp", "WRAP")
    prj.parameters_header.write_text(prj.parameters_header.read_text().replace(
        "static const int n_in", "static const int n_inn", 1))
    with pytest.raises(CompileError, match="parameters.h|qfx_layers.h"):
        _build(prj)


# ---------------------------------------------------------------------------- ResNet-8
class _Block(nn.Module):
    """MLPerf-Tiny ResNet-8 block (the peers' float model, copied)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.r1 = nn.ReLU()
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.sc = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                 nn.BatchNorm2d(cout))
                   if stride != 1 or cin != cout else None)
        self.r2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b2(self.c2(self.r1(self.b1(self.c1(x)))))
        return self.r2(y + (self.sc(x) if self.sc is not None else x))


class _ResNet8(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.l1 = _Block(16, 16, 1)
        self.l2 = _Block(16, 32, 2)
        self.l3 = _Block(32, 64, 2)
        self.pool = nn.AvgPool2d(8)
        self.fl = nn.Flatten()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.fl(self.pool(self.l3(self.l2(self.l1(self.stem(x)))))))


def test_resnet8_with_three_residual_adds_is_bit_exact(tmp_path):
    # Speed is measured by benchmarks/bench_csim.py against hls4ml, not asserted here.
    torch.manual_seed(0)
    calib = torch.randn(32, 3, 32, 32)
    qnet = qfx.quantize_model(_ResNet8().eval(), None, calib)
    graph = qfx.freeze(qnet.eval(), calib[:1])
    assert sum(n.op == "add" for n in graph.nodes) == 3
    xs = torch.randn(16, 3, 32, 32).numpy()
    prj = export_firmware(graph, tmp_path / "resnet8", project_name="resnet8", test_vectors=xs)
    got, stdout = _run(_build(prj), prj, prj.input_vectors, str(prj.expected_vectors))
    assert np.array_equal(got, _reference(prj)) and "0 mismatches" in stdout
