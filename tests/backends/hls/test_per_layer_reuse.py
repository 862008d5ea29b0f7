"""Per-layer reuse factors (``reuse={"fc": 1, "*": 32}``) in the HLS writer, the resource
estimate, ``export_hls`` and ``qfx export --reuse-layer``: changing one layer's reuse changes
only that layer's unroll factors and its estimated DSP/latency; the arithmetic is unchanged
(every other generated file is identical, and C-simulation is bit-exact); bad node names and
values are refused with clear errors before anything is written."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from torch import nn

import qfx
import qfx.cli
from qfx.backends.hls.estimate import estimate_resources
from qfx.backends.hls.export import export_hls, suggest_reuse
from qfx.backends.hls.project import HLSProject
from qfx.backends.hls.reuse import MAX_UNROLL, LayerReuse, fold, normalize_reuse, resolve_reuse
from qfx.backends.hls.writer import export_firmware
from qfx.ir import save_graph
from qfx.nn import QBatchNorm2d, QConfig, QConv2d, QFlatten, QInput, QLinear, QMaxPool2d, QReLU


def _freeze(net: nn.Module, x: torch.Tensor) -> qfx.Graph:
    net.train()
    with qfx.calibration(net):
        net(x)
    return qfx.freeze(net.eval(), x[:1])


@pytest.fixture(scope="module")
def cnn() -> qfx.Graph:
    torch.manual_seed(1)
    net = nn.Sequential(QInput(8), QConv2d(2, 4, 3, padding=1), QBatchNorm2d(4), QReLU(),
                        QMaxPool2d(2), QFlatten(), QLinear(16, 5))
    return _freeze(net, torch.randn(32, 2, 4, 4))


def _node(graph: qfx.Graph, op: str) -> str:
    return next(n.name for n in graph.nodes if n.op == op)


def _configs(text: str) -> dict[str, dict[str, int]]:
    """Every config struct of parameters.h: name -> {integer member: value}."""
    out = {}
    for name, body in re.findall(r"struct (\w+_config) \{(.*?)\};", text, flags=re.S):
        out[name] = {k: int(v) for k, v in re.findall(
            r"static const (?:int|long long) (\w+) = (-?\d+)", body)}
    return out


def _firmware(prj: HLSProject) -> dict[str, str]:
    return {p.relative_to(prj.root).as_posix(): p.read_text() for p in prj.files
            if p.suffix in (".h", ".cpp", ".txt")}


# ---------------------------------------------------------------------------- spec checks
def test_normalize_and_resolve(cnn):
    assert normalize_reuse(4) == 4 and isinstance(normalize_reuse(4), int)
    spec = normalize_reuse({"fc": 1})
    assert isinstance(spec, LayerReuse) and spec == {"fc": 1, "*": 1}
    assert str(normalize_reuse({"fc": 1, "conv": 64, "*": 32})) == "32 (per layer: fc=1, conv=64)"
    names = [n.name for n in cnn.nodes]
    dense, conv = _node(cnn, "dense"), _node(cnn, "conv2d")
    assert resolve_reuse(cnn, 3) == dict.fromkeys(names, 3)
    per = resolve_reuse(cnn, {dense: 1, conv: 64, "*": 32})
    assert list(per) == names
    assert per[dense] == 1 and per[conv] == 64
    assert all(v == 32 for k, v in per.items() if k not in (dense, conv))
    assert resolve_reuse(cnn, {"*": 5}) == resolve_reuse(cnn, 5)


@pytest.mark.parametrize("bad, match", [
    (0, r"reuse must be an integer >= 1, got 0"),
    (-3, r"reuse must be an integer >= 1"),
    (True, r"reuse must be an integer >= 1 or a mapping"),
    (2.5, r"reuse must be an integer >= 1 or a mapping"),
    ("4", r"reuse must be an integer >= 1 or a mapping"),
    ({"*": 0}, r"reuse\['\*'\] must be an integer >= 1, got 0"),
    ({"x": -1}, r"reuse\['x'\] must be an integer >= 1, got -1"),
    ({"x": True}, r"reuse\['x'\] must be an integer >= 1, got True"),
    ({"x": 1.5}, r"reuse\['x'\] must be an integer >= 1, got 1.5"),
    ({1: 2}, r"keys must be node names"),
])
def test_bad_values_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        normalize_reuse(bad)


def test_unknown_node_names_list_the_valid_ones(cnn, tmp_path):
    dense = _node(cnn, "dense")
    for call in (lambda r: resolve_reuse(cnn, r),
                 lambda r: estimate_resources(cnn, reuse=r),
                 lambda r: export_firmware(cnn, tmp_path / "fw", reuse=r),
                 lambda r: export_hls(cnn, out_dir=tmp_path / "hls", reuse=r)):
        with pytest.raises(ValueError) as info:
            call({"fc": 1, dense: 2, "*": 8})
        msg = str(info.value)
        assert "no node named 'fc'" in msg
        assert "valid node names: " + ", ".join(n.name for n in cnn.nodes) in msg
    with pytest.raises(ValueError, match=r"'n6' \(did you mean 'n_6'\?\)"):
        resolve_reuse(cnn, {"n6": 1})
    assert not (tmp_path / "fw").exists() and not (tmp_path / "hls").exists()
    assert list(tmp_path.iterdir()) == []  # atomic: no temporary folder left either


# ---------------------------------------------------------------------------- estimate
def test_one_layers_reuse_changes_only_that_layers_estimate(cnn):
    dense, conv = _node(cnn, "dense"), _node(cnn, "conv2d")
    base = estimate_resources(cnn, reuse=4, board="ultra96")
    # a mapping whose default is the int is the same design
    same = estimate_resources(cnn, reuse={"*": 4}, board="ultra96")
    assert [r.estimate for r in same.layers] == [r.estimate for r in base.layers]
    for target, value in ((dense, 1), (dense, 16), (conv, 1), (conv, 64)):
        rep = estimate_resources(cnn, reuse={target: value, "*": 4}, board="ultra96")
        assert rep.reuse == {target: value, "*": 4}
        assert rep.layer(target).reuse == value and rep.layer_reuse[target] == value
        for b, r in zip(base.layers, rep.layers, strict=True):
            if r.node == target:
                continue
            assert r.reuse == b.reuse, r.node
            assert (r.dsp, r.latency_cycles, r.parallel, r.ii) == (
                b.dsp, b.latency_cycles, b.parallel, b.ii), (target, r.node)
        b, r = base.layer(target), rep.layer(target)
        if value < 4:  # more parallel: more DSP, fewer cycles
            assert r.parallel > b.parallel and r.dsp > b.dsp
            assert r.latency_cycles < b.latency_cycles
        else:  # more folded: fewer DSP, more cycles
            assert r.parallel < b.parallel and r.dsp < b.dsp
            assert r.latency_cycles > b.latency_cycles
        # the totals move by exactly that layer's change
        assert rep.total.dsp - base.total.dsp == r.dsp - b.dsp
        assert rep.latency_cycles - base.latency_cycles == r.latency_cycles - b.latency_cycles
    # the layer folds as the writer does at its own factor
    rep = estimate_resources(cnn, reuse={dense: 3, "*": 64})
    red, lanes = fold(16, 5, 3)
    assert rep.layer(dense).parallel == red * lanes == 16 <= math.ceil(80 / 3)


def test_report_json_and_summary_show_each_layers_reuse(cnn):
    dense = _node(cnn, "dense")
    rep = estimate_resources(cnn, reuse={dense: 1, "*": 32}, board="ultra96")
    data = json.loads(json.dumps(rep.as_dict()))
    assert data["reuse"] == {dense: 1, "*": 32}
    assert data["reuse_per_layer"][dense] == 1
    rows = {row["node"]: row["reuse"] for row in data["layers"]}
    assert rows[dense] == 1 and rows["(axi-stream i/o)"] is None
    assert all(v == 32 for k, v in rows.items() if k not in (dense, "(axi-stream i/o)"))
    line = next(ln for ln in rep.summary().splitlines() if ln.startswith(dense + " "))
    assert line.split()[2] == "1"


# ---------------------------------------------------------------------------- writer
def test_one_layers_reuse_changes_only_its_unroll_factors(cnn, tmp_path):
    dense, conv = _node(cnn, "dense"), _node(cnn, "conv2d")
    base = export_firmware(cnn, tmp_path / "base", reuse=4)
    base_cfg = _configs(base.parameters_header.read_text())
    base_files = _firmware(base)
    for target, value in ((dense, 1), (conv, 64)):
        prj = export_firmware(cnn, tmp_path / f"{target}_{value}", reuse={target: value, "*": 4})
        assert prj.reuse == 4 and HLSProject.load(prj.root).reuse == 4
        manifest = json.loads((prj.root / "project.json").read_text())
        assert manifest["reuse"] == 4 and manifest["reuse_per_layer"][target] == value
        params = prj.parameters_header.read_text()
        assert f"Reuse factor 4 (per layer: {target}={value})." in params
        cfg = _configs(params)
        assert cfg.keys() == base_cfg.keys()
        for name, ints in cfg.items():
            if name == f"{target}_config":
                assert ints["reuse"] == value and base_cfg[name]["reuse"] == 4
                assert ints != base_cfg[name]
                assert {k: v for k, v in ints.items() if "unroll" not in k and k != "reuse"} \
                    == {k: v for k, v in base_cfg[name].items()
                        if "unroll" not in k and k != "reuse"}
            else:
                assert ints == base_cfg[name], name
        if target == dense:
            assert (cfg[f"{dense}_config"]["red_unroll"],
                    cfg[f"{dense}_config"]["out_unroll"]) == fold(16, 5, 1) == (16, 5)
        else:
            k, pix = 2 * 3 * 3, 4 * 4
            assert (cfg[f"{conv}_config"]["red_unroll"],
                    cfg[f"{conv}_config"]["out_unroll"]) == fold(k, pix, 64)
        # reuse only touches parameters.h's unroll factors: every other file is identical
        files = _firmware(prj)
        assert files.keys() == base_files.keys()
        assert [f for f in files if files[f] != base_files[f]] == ["firmware/parameters.h"]


def test_per_layer_folding_stays_below_the_unroll_limit(tmp_path):
    torch.manual_seed(0)
    with qfx.config(QConfig(per_channel_weights=True)):
        net = nn.Sequential(QInput(8), QLinear(8192, 2), QReLU(), QLinear(2, 3))
    g = _freeze(net, torch.randn(16, 8192))
    big, small = (n.name for n in g.nodes if n.op == "dense")
    prj = export_firmware(g, tmp_path / "p", reuse={big: 1, small: 100000, "*": 64})
    cfg = _configs(prj.parameters_header.read_text())
    assert (cfg[f"{big}_config"]["red_unroll"], cfg[f"{big}_config"]["out_unroll"]) == (4096, 1)
    assert (cfg[f"{small}_config"]["red_unroll"], cfg[f"{small}_config"]["out_unroll"]) == (1, 1)
    for ints in cfg.values():
        assert all(v <= MAX_UNROLL for k, v in ints.items() if "unroll" in k)
        if "red_unroll" in ints:
            assert ints["red_unroll"] * ints["out_unroll"] <= MAX_UNROLL
    rep = estimate_resources(g, reuse={big: 1, small: 100000, "*": 64})
    assert rep.layer(big).parallel == MAX_UNROLL and rep.layer(small).parallel == 1


# ---------------------------------------------------------------------------- C simulation
def test_csim_is_bit_exact_with_a_per_layer_mapping(cnn, tmp_path):
    dense, conv, bn = _node(cnn, "dense"), _node(cnn, "conv2d"), _node(cnn, "batchnorm")
    prj = export_firmware(cnn, tmp_path / "prj", reuse={dense: 1, conv: 7, bn: 2, "*": 3})
    rep = qfx.csim(prj, samples=24, seed=3, opt="-O1", cache_dir=tmp_path / "cache")
    assert rep.bit_exact is True and rep.mismatches == 0 and rep.samples == 24


# ---------------------------------------------------------------------------- export_hls
def test_export_hls_with_a_per_layer_mapping(cnn, tmp_path):
    dense = _node(cnn, "dense")
    prj = export_hls(cnn, out_dir=tmp_path / "prj", board="ultra96", reuse={dense: 1, "*": 32},
                     test_vectors=2)
    assert prj.reuse == 32 and prj.report.reuse == {dense: 1, "*": 32}
    assert prj.report.layer(dense).reuse == 1
    manifest = json.loads((prj.root / "project.json").read_text())
    assert manifest["reuse"] == 32 and manifest["reuse_per_layer"][dense] == 1
    assert manifest["export"]["reuse"] == 32
    assert HLSProject.load(prj.root).reuse == 32
    md = (prj.root / "report.md").read_text()
    assert f"reuse factor 32 (per layer: {dense}=1)" in md
    table = md.split("## Per-layer parallelism", 1)[1]
    assert "| layer | op | mults / inference | reuse |" in table

    def cell(node: str) -> str:  # the reuse column of the node's row
        return next(ln for ln in table.splitlines() if ln.startswith(f"| {node} |")).split(
            "|")[4].strip()

    assert cell(dense) == "1" and cell(_node(cnn, "conv2d")) == "32"
    assert cell("(axi-stream i/o)") == "-"
    assert json.loads((prj.root / "report.json").read_text())["reuse_per_layer"][dense] == 1
    assert f"{dense}=1" in (prj.root / "README.md").read_text()


def _wide_mlp() -> qfx.Graph:
    torch.manual_seed(2)
    with qfx.config(QConfig(weight_width=16, act_width=16, input_width=16)):
        net = nn.Sequential(QInput(16), QLinear(64, 64), QReLU(), QLinear(64, 4))
    return _freeze(net, torch.randn(64, 64))


def test_over_budget_advice_keeps_the_named_layers(tmp_path):
    g = _wide_mlp()  # 4096 16x16 multipliers in the first layer at reuse 1
    first, last = (n.name for n in g.nodes if n.op == "dense")
    hint = suggest_reuse(g, "ultra96", overrides={last: 1})
    assert hint is not None and hint > 1
    assert estimate_resources(g, reuse={last: 1, "*": hint}, board="ultra96").fits
    assert not estimate_resources(g, reuse={last: 1, "*": hint // 2}, board="ultra96").fits
    with pytest.raises(ValueError) as info:
        export_hls(g, out_dir=tmp_path / "a", reuse={last: 1, "*": 1})
    assert f"reuse={ {last: 1, '*': hint}!r} fits (estimate)" in str(info.value)
    with pytest.raises(ValueError, match=rf"while {first}=1 keep their reuse"):
        export_hls(g, out_dir=tmp_path / "b", reuse={first: 1, "*": 64})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- CLI
@pytest.fixture()
def cli(monkeypatch):
    entry = ("qfx.cli.export", "register")
    if entry not in qfx.cli._COMMANDS:
        monkeypatch.setattr(qfx.cli, "_COMMANDS", (*qfx.cli._COMMANDS, entry))
    return qfx.cli.main


def test_cli_reuse_layer(cli, cnn, tmp_path, capsys):
    dense, conv = _node(cnn, "dense"), _node(cnn, "conv2d")
    model = save_graph(cnn, tmp_path / "m.qfx.npz")
    out = tmp_path / "prj"
    assert cli(["export", str(model), "-o", str(out), "--samples", "2", "--reuse", "32",
                "--reuse-layer", f"{dense}=1", "--reuse-layer", f"{conv}=64"]) == 0
    text = capsys.readouterr().out
    assert re.search(rf"^{dense} +dense +1 ", text, flags=re.M)
    manifest = json.loads((out / "project.json").read_text())
    assert manifest["reuse"] == 32
    assert manifest["reuse_per_layer"][dense] == 1 and manifest["reuse_per_layer"][conv] == 64
    assert _configs((out / "firmware" / "parameters.h").read_text())[f"{dense}_config"][
        "reuse"] == 1
    for bad, match in ((["--reuse-layer", "fc=1"], "no node named 'fc'"),
                       (["--reuse-layer", dense], "expects NODE=N"),
                       (["--reuse-layer", f"{dense}=x"], "'x' is not an integer"),
                       (["--reuse-layer", f"{dense}=0"], "must be >= 1"),
                       (["--reuse-layer", f"{dense}=1", "--reuse-layer", f"{dense}=2"],
                        "twice"),
                       (["--reuse-layer", "*=4"], "--reuse N")):
        assert cli(["export", str(model), "-o", str(tmp_path / "x"), *bad]) == 2  # bad input
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not (tmp_path / "x").exists()
