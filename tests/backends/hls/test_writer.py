"""The HLS firmware writer: files, exact type spellings and raw constants, names, atomic export,
folding limits, refusal of inconsistent graphs, vector/trace formats. (No compiler here: the
C++ is compiled and run in test_csim_smoke.py.)"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import qfx
from qfx.backends.hls import writer
from qfx.backends.hls.layout import (
    axis_unpack,
    axis_words,
    read_trace,
    read_vectors,
    write_vectors,
)
from qfx.backends.hls.project import HLSProject
from qfx.backends.hls.reuse import MAX_UNROLL, fold
from qfx.backends.hls.writer import export_firmware
from qfx.fixed.fixed_type import FixedType
from qfx.ir import run_graph
from qfx.ir.ops.shapes import maxpool2d_output_size
from qfx.nn import QBatchNorm2d, QConfig, QConv2d, QFlatten, QInput, QLinear, QMaxPool2d, QReLU


def _mlp_graph(n_in: int = 6, hidden: int = 5, bias: bool = True) -> qfx.Graph:
    torch.manual_seed(0)
    with qfx.config(QConfig(per_channel_weights=True)):
        net = nn.Sequential(QInput(8), QLinear(n_in, hidden, bias=bias), QReLU(),
                            QLinear(hidden, 3))
    x = torch.randn(32, n_in)
    with qfx.calibration(net):
        net(x)
    return qfx.freeze(net.eval(), x[:1])


def _conv_graph() -> qfx.Graph:
    torch.manual_seed(1)
    net = nn.Sequential(QInput(8), QConv2d(2, 4, 3, padding=1), QBatchNorm2d(4), QReLU(),
                        QMaxPool2d(2), QFlatten(), QLinear(16, 3))
    x = torch.randn(16, 2, 4, 4)
    net.train()
    net(x)
    return qfx.freeze(net.eval(), x[:1])


@pytest.fixture(scope="module")
def mlp() -> qfx.Graph:
    return _mlp_graph()


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


# ---------------------------------------------------------------------------- what is written
def test_export_writes_the_documented_files(tmp_path, mlp):
    x = torch.randn(7, 6).numpy()
    prj = export_firmware(mlp, tmp_path / "prj", project_name="mlp", test_vectors=x)
    rel = sorted(p.relative_to(prj.root).as_posix() for p in prj.files)
    names = [n.name for n in mlp.nodes]
    assert rel == sorted([
        "firmware/mlp.cpp", "firmware/mlp.h", "firmware/mlp_axis.cpp", "firmware/mlp_axis.h",
        "firmware/parameters.h", "firmware/qfx_axi_sdata.h", "firmware/qfx_layers.h",
        f"firmware/weights/{names[1]}_w.h", f"firmware/weights/{names[1]}_b.h",
        f"firmware/weights/{names[3]}_w.h", f"firmware/weights/{names[3]}_b.h",
        "tb/tb_mlp.cpp", "tb/inputs.txt", "tb/expected.txt", "project.json", "model.qfx.npz"])
    assert all(p.is_file() for p in prj.files)
    assert prj.top == "mlp" and prj.axis_top == "mlp_axis" and prj.io == "parallel"
    # the layer library is shipped verbatim
    assert prj.layers_header.read_text() == (
        writer.templates_dir() / "firmware" / "qfx_layers.h").read_text()
    # vectors: inputs are raw mantissas of the input edge type, expected = the exact executor
    in_t = mlp.edges[mlp.inputs[0]].type
    raw_in = read_vectors(prj.input_vectors)
    assert np.array_equal(raw_in, in_t.to_int(x))
    expected = run_graph(mlp, in_t.from_int(raw_in)).raw[0]
    assert np.array_equal(read_vectors(prj.expected_vectors), expected)
    # the project reloads from its manifest
    again = HLSProject.load(prj.root)
    assert again.files == prj.files and again.inputs == prj.inputs
    assert again.graph.summary() == mlp.summary()
    assert json.loads((prj.root / "project.json").read_text())["axis_width"] == 8


def test_typedefs_are_the_exact_fixedtype_spellings(tmp_path):
    graph = _conv_graph()
    prj = export_firmware(graph, tmp_path / "prj")
    text = prj.parameters_header.read_text()
    typedefs = dict((name, cpp) for cpp, name in re.findall(r"typedef (ap_u?fixed<[^>]*>) (\w+);",
                                                            text))
    for e in graph.edges.values():
        assert typedefs[f"{e.name}_t"] == e.type.cpp()
        assert FixedType.parse(typedefs[f"{e.name}_t"]) == e.type
    for node in graph.nodes:
        for attr, kind in (("weight_type", "weight"), ("bias_type", "bias"),
                           ("acc_type", "acc"), ("scale_type", "scale"),
                           ("shift_type", "shift")):
            if attr in node.attrs:
                assert typedefs[f"{node.name}_{kind}_t"] == node.attrs[attr].cpp()
    conv = next(n for n in graph.nodes if n.op == "conv2d")
    assert f"typedef {conv.attrs['acc_type'].cpp()} {conv.name}_acc_t;" in text


def _initialiser(header: Path) -> list[int]:
    body = header.read_text().split("= {", 1)[1].split("};", 1)[0]
    return [int(v.removesuffix("LL")) for v in re.findall(r"-?\d+(?:LL)?", body)]


def test_constants_are_the_raw_integers_of_the_ir(tmp_path):
    graph = _conv_graph()
    prj = export_firmware(graph, tmp_path / "prj")
    seen = 0
    for node in graph.nodes:
        for key, suffix in (("weight", "w"), ("bias", "b"), ("scale", "scale"),
                            ("shift", "shift")):
            if key in node.params:
                header = prj.weights_dir / f"{node.name}_{suffix}.h"
                assert _initialiser(header) == node.params[key].ravel().tolist()
                t = node.attrs[f"{key}_type"]
                assert f"raw * 2^{-t.frac_bits}" in header.read_text()
                seen += 1
    assert seen == 6  # conv w, b; batchnorm scale, shift; dense w, b


def test_wide_constants_get_64_bit_literals():
    assert writer._cint(2**40) == "1099511627776LL"
    assert writer._cint(-(2**31)) == "-2147483648LL"
    assert writer._cint(-(2**31) + 1) == "-2147483647"


def test_a_missing_bias_becomes_a_zero_bias_in_the_accumulator_type(tmp_path):
    graph = _mlp_graph(bias=False)
    prj = export_firmware(graph, tmp_path / "prj")
    dense = graph.nodes[1]
    assert "bias" not in dense.params
    header = prj.weights_dir / f"{dense.name}_b.h"
    assert _initialiser(header) == [0] * dense.params["weight"].shape[0]
    assert (f"typedef {dense.attrs['acc_type'].cpp()} {dense.name}_bias_t;"
            in prj.parameters_header.read_text())


def test_top_calls_the_layers_in_ir_order_and_flatten_moves_no_data(tmp_path):
    graph = _conv_graph()
    prj = export_firmware(graph, tmp_path / "prj")
    top = prj.top_source.read_text()
    traced = re.findall(r'QFX_TRACE_NODE\("(\w+)"', top)
    assert traced == [n.name for n in graph.nodes]
    calls = re.findall(r"qfx::(\w+)< ::\w+::(\w+)_config >", top)
    assert [c[1] for c in calls] == [n.name for n in graph.nodes if n.op != "flatten"]
    flat = next(n for n in graph.nodes if n.op == "flatten")
    pool = graph.producer(flat.inputs[0])
    assert f'QFX_TRACE_NODE("{flat.name}", {pool.name}_out,' in top
    dense = graph.nodes[-1]
    assert f"qfx::dense< ::qfx_model_fw::{dense.name}_config >({pool.name}_out," in top


# ---------------------------------------------------------------------------- folding
def _ints(text: str, config: str) -> dict[str, int]:
    body = text.split(f"struct {config} {{", 1)[1].split("};", 1)[0]
    return {k: int(v) for k, v in re.findall(r"static const (?:int|long long) (\w+) = (-?\d+)",
                                             body)}


@pytest.mark.parametrize("reuse, red, out", [(1, 4096, 1), (4, 4096, 1), (64, 256, 1),
                                             (100000, 1, 1)])
def test_reuse_folds_big_layers_below_the_unroll_limit(tmp_path, reuse, red, out):
    graph = _mlp_graph(n_in=8192, hidden=2)
    prj = export_firmware(graph, tmp_path / "prj", reuse=reuse)
    cfg = _ints(prj.parameters_header.read_text(), f"{graph.nodes[1].name}_config")
    assert (cfg["red_unroll"], cfg["out_unroll"]) == (red, out)
    assert cfg["red_unroll"] * cfg["out_unroll"] <= MAX_UNROLL


def test_fold_rule():
    # fully parallel when it fits, multipliers = ceil(n_mults / reuse) otherwise
    assert fold(10, 7, 1) == (10, 7)
    assert fold(10, 7, 2) == (10, 3)
    assert fold(10, 7, 7) == (10, 1)
    assert fold(10, 7, 35) == (2, 1)
    assert fold(5000, 3000, 1) == (4096, 1)
    assert fold(9, 1024, 1) == (9, 455)
    for k, n, r in [(1, 1, 1), (3, 99999, 1), (4097, 2, 3), (64, 64, 1000)]:
        red, out = fold(k, n, r)
        assert 1 <= red <= min(k, MAX_UNROLL) and 1 <= out <= n and red * out <= MAX_UNROLL


# ---------------------------------------------------------------------------- safety
def test_existing_directory_is_refused_without_force(tmp_path, mlp):
    target = tmp_path / "prj"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="force=True"):
        export_firmware(mlp, target)
    assert (target / "keep.txt").read_text() == "mine"
    with pytest.raises(FileExistsError, match="not a folder qfx wrote"):
        export_firmware(mlp, target, force=True)  # not ours: refused even with force
    assert (target / "keep.txt").read_text() == "mine"
    (target / "keep.txt").unlink()  # an empty folder may be replaced
    export_firmware(mlp, target, force=True)
    (target / "extra.txt").write_text("x")  # so may a project qfx wrote
    prj = export_firmware(mlp, target, force=True)
    assert not (target / "extra.txt").exists() and prj.top_source.is_file()
    assert _siblings(target) == ["prj"]  # no temporary or old folders left behind


def test_failure_while_rendering_leaves_no_directory(tmp_path, mlp, monkeypatch):
    broken = tmp_path / "templates"
    shutil.copytree(writer.templates_dir(), broken)
    top = broken / "firmware" / "top.cpp.j2"
    top.write_text(top.read_text() + "{{ no_such_variable }}\n")
    monkeypatch.setattr(writer, "templates_dir", lambda: broken)
    out = tmp_path / "out"
    out.mkdir()
    target = out / "prj"
    with pytest.raises(Exception, match="no_such_variable"):
        export_firmware(mlp, target)
    assert not target.exists() and _siblings(target) == []


def test_failure_while_writing_leaves_no_directory_and_keeps_the_old_one(tmp_path, mlp,
                                                                         monkeypatch):
    target = tmp_path / "prj"
    export_firmware(mlp, target)
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    real = writer.save_graph

    def failing(graph, path):  # called after the C++ files are written
        real(graph, path)
        raise OSError("disk full")

    monkeypatch.setattr(writer, "save_graph", failing)
    with pytest.raises(OSError, match="disk full"):
        export_firmware(mlp, target, force=True)
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before
    assert _siblings(target) == ["prj"]
    with pytest.raises(OSError, match="disk full"):
        export_firmware(mlp, tmp_path / "fresh")
    assert _siblings(target) == ["prj"]


@pytest.mark.parametrize("where", ["node", "edge", "project"])
def test_names_that_are_not_identifiers_never_reach_cpp(tmp_path, where):
    graph = _mlp_graph()
    evil = 'a;system("x")'
    kwargs = {}
    if where == "node":
        graph.nodes[1].name = evil
    elif where == "edge":
        old = graph.nodes[1].output
        graph.edges[evil] = graph.edges.pop(old)
        graph.nodes[1].output = evil
        graph.nodes[2].inputs = [evil]
    else:
        kwargs["project_name"] = evil
    with pytest.raises(ValueError, match="not a C\\+\\+ identifier"):
        export_firmware(graph, tmp_path / "prj", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_colliding_generated_names_are_refused(tmp_path):
    graph = _mlp_graph()
    # a project named "<node>_out" would give the top function the name of an array
    with pytest.raises(ValueError, match="collide"):
        export_firmware(graph, tmp_path / "prj", project_name=graph.nodes[1].name + "_out")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_refused(tmp_path, mlp):
    with pytest.raises(ValueError, match="io='dataflow' is not an architecture.*parallel, stream"):
        export_firmware(mlp, tmp_path / "a", io="dataflow")
    with pytest.raises(ValueError, match="reuse"):
        export_firmware(mlp, tmp_path / "b", reuse=0)
    with pytest.raises(ValueError, match="axis_width"):
        export_firmware(mlp, tmp_path / "c", axis_width=4)
    with pytest.raises(ValueError, match="test vectors"):
        export_firmware(mlp, tmp_path / "d", test_vectors=np.zeros((2, 5)))
    assert list(tmp_path.iterdir()) == []


def test_inconsistent_accumulators_are_refused(tmp_path):
    graph = _mlp_graph()
    dense = graph.nodes[1]
    acc = dense.attrs["acc_type"]
    dense.attrs["acc_type"] = FixedType(acc.width - 2, acc.int_bits - 2)
    with pytest.raises(ValueError, match="cannot hold every partial sum"):
        export_firmware(graph, tmp_path / "prj")
    graph = _conv_graph()
    pool = next(n for n in graph.nodes if n.op == "maxpool2d")
    t = graph.edges[pool.output].type
    graph.edges[pool.output] = graph.edges[pool.output].__class__(
        pool.output, graph.edges[pool.output].shape, t.replace(width=t.width + 1))
    with pytest.raises(ValueError, match="keeps its input type"):
        export_firmware(graph, tmp_path / "prj2")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- formats
def test_vector_and_trace_files_round_trip(tmp_path):
    raw = np.array([[0, -1, 2**40], [5, 6, -(2**52)]], dtype=np.int64)
    p = write_vectors(tmp_path / "v.txt", raw, ["a comment"])
    assert p.read_text().startswith("# qfx-vectors v1\n")
    assert np.array_equal(read_vectors(p), raw)
    (tmp_path / "bad.txt").write_text("1 2\n3\n")
    with pytest.raises(ValueError, match="bad.txt:2"):
        read_vectors(tmp_path / "bad.txt")
    (tmp_path / "t.txt").write_text("a 1 2 3 4\na 0 2 1 2\nb 0 1 -7\n")
    tr = read_trace(tmp_path / "t.txt")
    assert list(tr) == ["a", "b"] and tr["a"].tolist() == [[1, 2], [3, 4]]


def test_axis_packing_mirrors_the_wrapper():
    t = FixedType(12, 4)
    raw = np.array([-2048, -1, 0, 2047])
    words = axis_words(raw, t, 16)
    assert words.tolist() == [0xF800, 0xFFFF, 0, 0x07FF]
    assert np.array_equal(axis_unpack(words, t, 16), raw)
    u = FixedType(12, 4, signed=False)
    assert axis_unpack([0xFFFF], u, 16).tolist() == [4095]


@pytest.mark.parametrize("size, k, s, p, d, ceil", [(5, 2, 2, 0, 1, True), (7, 3, 2, 1, 1, True),
                                                    (8, 3, 3, 1, 2, False), (6, 2, 2, 1, 1,
                                                                             True)])
def test_maxpool_output_size_matches_torch(size, k, s, p, d, ceil):
    y = torch.nn.functional.max_pool2d(torch.zeros(1, 1, size, size), k, s, p, d, ceil)
    assert maxpool2d_output_size(size, kernel=k, stride=s, padding=p, dilation=d,
                                 ceil_mode=ceil) == y.shape[-1]
