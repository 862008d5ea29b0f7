"""``reuse="auto"`` (qfx.backends.hls.autofold): every zoo model on every board fits its budget
by estimate (or a clear error), no layer can be unfolded further without breaking the budget or
gaining nothing, targets are met or the bottleneck is named, manual settings win, absurd reuse
values are refused, and an auto export C-simulates bit-exactly."""

from __future__ import annotations

import math

import pytest
import torch
from builders import zoo_model

import qfx
from qfx.backends.hls.autofold import BOUNDS, autofold, layer_candidates
from qfx.backends.hls.boards import list_boards
from qfx.backends.hls.budget import ResourceBudget
from qfx.backends.hls.estimate import EstimateModel, estimate_resources
from qfx.cli import main
from qfx.zoo import model_names, model_spec

# how the zoo C-sim / golden tests quantize each zoo model (None: binarized, BN statistics)
QUANT = {"digits_cnn": {"bits": 8}, "resnet8": {"bits": 8}, "resnet20": {"bits": 6},
         "digits_bnn": None, "cnv_w1a1": None}
_GRAPHS: dict[str, qfx.Graph] = {}


def _graph(name: str) -> qfx.Graph:
    if name not in _GRAPHS:
        model, calib = zoo_model(name, QUANT.get(name, {"bits": 8}))
        _GRAPHS[name] = qfx.freeze(model, calib[:1])
    return _GRAPHS[name]


def _objective(rep) -> int:
    return rep.interval_cycles if rep.io == "stream" else rep.latency_cycles


def _check_local_optimum(graph, board, io, fold, budget=1.0) -> None:
    """No single layer can take its next, more parallel, folding while the full estimate still
    fits and the objective (stream: interval; parallel: latency) improves."""
    bud = ResourceBudget.from_board(board, budget)
    model = EstimateModel(graph, board=board, io=io)
    base = _objective(fold.report)
    per = fold.report.layer_reuse
    for node in graph.nodes:
        cands = layer_candidates(model, node.name)
        idx = [c.reuse for c in cands].index(per[node.name])
        if idx + 1 == len(cands):
            continue
        trial = {**per, node.name: cands[idx + 1].reuse, "*": 1}
        rep = model.report(trial)
        assert not rep.total.fits(bud) or _objective(rep) >= base, (node.name, trial)


#: ops-window's MLPerf Tiny models: tests/zoo/test_mlperf_tiny.py autofolds them for the Ultra96
#: (every board and architecture here would add over a minute to the suite)
_MLPERF_TINY = ("ds_cnn", "mobilenet_v1_025", "mobilenet_v1_025_32", "fc_autoencoder")


@pytest.mark.parametrize("name", [n for n in model_names() if n not in _MLPERF_TINY])
def test_auto_fits_every_board_or_says_why(name):
    graph = _graph(name)
    for board in [b.name for b in list_boards()]:
        for io in ("parallel", "stream"):
            try:
                fold = autofold(graph, board, io=io)
            except ValueError as err:
                assert "no reuse makes the design fit" in str(err), str(err)
                # really: the most folded design of every layer does not fit
                assert not estimate_resources(graph, reuse=1 << 30, board=board, io=io).fits
                continue
            rep = fold.report
            assert rep.fits, (board, io, rep.over_budget())
            assert set(fold.bound.values()) <= set(BOUNDS)
            if io == "stream":  # balance: no layer busier than the interval (the AXI
                # i/o row sums the stream-in and stream-out processes plus their pipeline
                # depth; the interval counts each of them as its own process)
                assert max(r.latency_cycles for r in rep.layers
                           if r.op != "axis") <= rep.interval_cycles


@pytest.mark.parametrize("name", ["digits_cnn", "digits_bnn"])
def test_no_layer_can_be_unfolded_further(name):
    graph = _graph(name)
    for board in [b.name for b in list_boards()]:
        for io in ("parallel", "stream"):
            fold = autofold(graph, board, io=io, budget=0.8)
            assert fold.report.total.fits(ResourceBudget.from_board(board, 0.8))
            _check_local_optimum(graph, board, io, fold, 0.8)


def test_resnet8_stream_is_balanced_and_locally_optimal():
    graph = _graph("resnet8")
    fold = autofold(graph, "ultra96", io="stream")
    _check_local_optimum(graph, "ultra96", "stream", fold)
    # FINN's balance: each layer is folded as far as the interval allows
    model = EstimateModel(graph, board="ultra96", io="stream")
    t = fold.report.interval_cycles
    for node in graph.nodes:
        cands = layer_candidates(model, node.name)
        idx = [c.reuse for c in cands].index(fold.report.layer_reuse[node.name])
        assert idx == 0 or cands[idx - 1].cycles > t, node.name


def test_resnet20_stream_fits_the_ultra96():
    """(The search's speed is measured by benchmarks/bench_autofold.py, not here.)"""
    fold = autofold(_graph("resnet20"), "ultra96", io="stream")
    assert fold.report.fits


def test_target_fps_is_met_cheaply_or_names_the_bottleneck():
    graph = _graph("digits_cnn")
    best = autofold(graph, "ultra96", io="stream")
    fps = best.report.throughput_per_s
    half = autofold(graph, "ultra96", io="stream", target_fps=fps / 2)
    assert half.report.throughput_per_s >= fps / 2
    assert half.report.total.dsp <= best.report.total.dsp
    assert "target" in half.bound.values()
    with pytest.raises(ValueError, match="cannot reach .*(bottleneck|layer|input)"):
        autofold(graph, "ultra96", io="stream", target_fps=fps * 1000)
    with pytest.raises(ValueError, match="cannot reach .*bottleneck is layer"):
        autofold(graph, "pynq-z2", io="stream", target_fps=fps * 1.5)
    lat = autofold(graph, "ultra96", target_latency_us=200.0)
    assert lat.report.latency_us <= 200.0
    with pytest.raises(ValueError, match="cannot reach .*bottleneck is layer"):
        autofold(graph, "ultra96", target_latency_us=1.0)


def test_manual_settings_win_and_absurd_reuse_is_refused(tmp_path):
    graph = _graph("digits_cnn")
    prj = qfx.export_hls(graph, out_dir=tmp_path / "a", board="ultra96",
                         reuse={"fc": 640, "*": "auto"}, test_vectors=2)
    assert prj.report.layer_reuse["fc"] == 640 and prj.report.fits
    fold_report = (tmp_path / "a" / "report.md").read_text()
    assert "| fc | 640 |" in fold_report and "manual" in fold_report
    prj = qfx.export_hls(graph, out_dir=tmp_path / "b", board="ultra96", reuse=64,
                         test_vectors=2)
    assert set(prj.report.layer_reuse.values()) == {64}
    assert not (tmp_path / "b" / "report_fold.png").exists()
    for bad in (10**23, 10**7):
        with pytest.raises(ValueError, match="reuse") as err:
            qfx.export_hls(graph, out_dir=tmp_path / "c", board="ultra96", reuse=bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="target_fps"):
        qfx.export_hls(graph, out_dir=tmp_path / "d", reuse=8, target_fps=1000.0)
    with pytest.raises(ValueError, match="budget"):
        qfx.export_hls(graph, out_dir=tmp_path / "d", reuse="auto", budget=1.5)


def test_auto_export_is_bit_exact_in_csim(tmp_path):
    model, calib = zoo_model("digits_cnn", {"bits": 8})
    prj = qfx.export_hls(model, calib[:1], tmp_path / "prj", board="ultra96", reuse="auto",
                         budget=0.8, test_vectors=calib[:2].numpy())
    assert prj.report.fits and len(set(prj.report.layer_reuse.values())) > 1
    x = torch.cat([torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8) * 16])
    report = qfx.csim(prj, x)
    assert report.bit_exact, str(report)
    data = (prj.root / "report.json").read_text()
    assert '"autofold"' in data and (prj.root / "report_fold.png").exists()


@pytest.mark.parametrize("name,io", [("digits_cnn", "parallel"), ("resnet8", "stream")])
def test_cli_export_needs_no_reuse(name, io, tmp_path, capsys):
    path = tmp_path / f"{name}.qfx.npz"
    qfx.save_graph(_graph(name), path)
    out = tmp_path / "prj"
    assert main(["export", str(path), "--board", "ultra96", "-o", str(out), "--io", io,
                 "--samples", "2"]) == 0
    printed = capsys.readouterr().out
    assert "reuse auto:" in printed and "fits the board" in printed
    assert math.isfinite(float(printed.split("inferences/s")[0].split()[-1].replace(",", "")))
    assert model_spec(name) is not None
