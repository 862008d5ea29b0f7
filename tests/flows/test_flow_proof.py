"""A flow's ``bit_exact`` criterion needs the synthesis arithmetic (``-DQFX_AP_ARITH``) proven,
and ``flow.json``/JUnit say which arithmetic paths were proven on how many samples."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from qfx.flows.flow import FlowResult, StageResult, _judge, _write_junit, load_flow, run_flow


def _proof(arith: str, samples: int, mismatches: int = 0) -> dict:
    return {"arith": arith, "samples": samples, "bit_exact": mismatches == 0,
            "mismatches": mismatches}


def _result(tmp_path: Path, proofs: list[dict]) -> FlowResult:
    r = FlowResult("t", tmp_path, stages=[StageResult("csim", "passed", 1.0, "")])
    r.metrics.update(bit_exact=all(p["bit_exact"] for p in proofs),
                     csim_mismatches=sum(p["mismatches"] for p in proofs), csim_samples=100,
                     csim_proofs=proofs,
                     csim_proven={p["arith"]: p["samples"] for p in proofs if p["bit_exact"]})
    return r


@pytest.fixture()
def spec():
    return load_flow("flows/digits-ultra96.yaml")


def test_bit_exact_needs_the_synthesis_arithmetic(spec, tmp_path):
    r = _result(tmp_path, [_proof("native", 100), _proof("synth", 20)])
    _judge(spec, r)
    crit = {c.name: c for c in r.criteria}["bit_exact"]
    assert crit.passed
    assert "native C-sim arithmetic bit-exact on 100 samples" in crit.message
    assert "synthesis arithmetic (-DQFX_AP_ARITH) bit-exact on 20 samples" in crit.message

    r = _result(tmp_path, [_proof("native", 100)])
    _judge(spec, r)
    crit = {c.name: c for c in r.criteria}["bit_exact"]
    assert not crit.passed and "synthesis arithmetic (-DQFX_AP_ARITH) was not proven" in \
        crit.message

    r = _result(tmp_path, [_proof("native", 100), _proof("synth", 20, mismatches=3)])
    _judge(spec, r)
    assert not {c.name: c for c in r.criteria}["bit_exact"].passed


def test_junit_has_one_case_per_arithmetic_path(spec, tmp_path):
    r = _result(tmp_path, [_proof("native", 100), _proof("synth", 20, mismatches=2)])
    _judge(spec, r)
    suite = ET.parse(_write_junit(r, tmp_path / "j.xml")).getroot().find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["csim.native"].find("failure") is None
    fail = cases["csim.synth"].find("failure")
    assert fail is not None and "on 20 samples" in fail.get("message")


def test_flow_csim_section_accepts_arith(tmp_path):
    assert load_flow("flows/digits-ultra96.yaml").csim["arith"] == "both"
    flow = tmp_path / "f.yaml"
    flow.write_text("dataset: {name: synthetic, n: 96, shape: [1, 8, 8]}\nmodel: digits_cnn\n"
                    "quantization: {bits: 6}\ncsim: {samples: 8, arith: fast}\n")
    with pytest.raises(ValueError, match="csim.arith"):
        load_flow(flow)


def test_budget_met_compares_the_estimate_with_the_training_budget(tmp_path):
    spec = load_flow("flows/digits-budget-ultra96.yaml")
    assert spec.criteria["budget_met"]  # on by default when training has a budget
    assert not load_flow("flows/digits-ultra96.yaml").criteria["budget_met"]
    r = FlowResult("t", tmp_path)
    _judge(spec, r)
    assert not {c.name: c for c in r.criteria}["budget_met"].passed  # export did not run
    for dsp, ok in ((180, True), (181, False)):  # 0.5 of the Ultra96-V2's 360 DSPs
        r = FlowResult("t", tmp_path)
        r.metrics["estimate"] = {"LUT": 1000, "FF": 10, "DSP": dsp}
        _judge(spec, r)
        crit = {c.name: c for c in r.criteria}["budget_met"]
        assert crit.passed is ok and f"dsp {dsp:,} of 180" in crit.message


def test_budget_met_judges_a_lut_equiv_budget(tmp_path):
    # LUT + 55 x DSP: one figure for the logic, 0.1 of the Ultra96-V2's (70,560 + 55 x 360)
    flow = tmp_path / "f.yaml"
    flow.write_text("dataset: {name: synthetic, n: 96, shape: [1, 8, 8]}\nmodel: digits_cnn\n"
                    "quantization: {bits: 6, learn_widths: true}\n"
                    "training: {epochs: 1, budget: {board: ultra96, lut_equiv: 0.1}}\n")
    spec = load_flow(flow)
    for lut, dsp, ok in ((3536, 100, True), (3537, 100, False)):
        r = FlowResult("t", tmp_path)
        r.metrics["estimate"] = {"LUT": lut, "FF": 10, "DSP": dsp}
        _judge(spec, r)
        crit = {c.name: c for c in r.criteria}["budget_met"]
        assert crit.passed is ok, crit.message


def test_the_lut_budget_flow_budgets_lut_plus_55_dsp():
    from qfx.training.config import resolve_budget

    spec = load_flow("flows/digits-lut-budget-ultra96.yaml")
    assert spec.criteria["budget_met"]
    assert resolve_budget(spec.train.training.budget) == {"lut_equiv": 0.12 * (70560 + 55 * 360)}


def test_the_report_tells_how_training_met_its_budget(tmp_path):
    """A flow trained to a budget reports the budget and the final estimate, what the
    guarantee step pruned and coarsened, and which epoch the settle phase ended on."""
    flow = tmp_path / "f.yaml"
    flow.write_text("dataset: {name: synthetic, n: 96, shape: [1, 8, 8]}\nmodel: digits_cnn\n"
                    "quantization: {bits: 4, learn_widths: true}\n"
                    "training: {epochs: 4, budget: {board: ultra96, lut_equiv: 0.1}}\n"
                    "export: {reuse: 16}\n")
    r = run_flow(load_flow(flow), out_dir=tmp_path / "run", progress=False, skip=("csim",))
    assert {c.name: c for c in r.criteria}["budget_met"].passed
    report = (tmp_path / "run" / "report.md").read_text()
    section = report.split("## Training to a resource budget", 1)[1].split("\n## ", 1)[0]
    assert "- budget lut_equiv 9,036; the final model's estimate lut" in section  # 0.1 x 90,360
    assert "guarantee step (the settle phase's start and training's end): estimate" in section
    assert "channel(s) pruned" in section and "training loss" in section
    assert "- the settle phase ended on " in section


def test_a_budget_with_searched_reuse_trains_against_the_most_folded_design(tmp_path):
    """With ``reuse: auto`` the training measures the most folded design (fully parallel, a
    learned-width DS-CNN at 6 bits is about 100x the PYNQ-Z2's LUTs and no training brings
    it to a budget), and the export's search unfolds only within the training budget: the
    flow meets its budget and fits the board by construction."""
    from qfx.flows.flow import _fold_budget, budget_measure

    flow = tmp_path / "f.yaml"
    flow.write_text("dataset: {name: synthetic_kws, n: 96}\nmodel: ds_cnn\n"
                    "quantization: {bits: 6, learn_widths: true, width_granularity: channel}\n"
                    "training: {epochs: 2, budget: {board: pynq-z2, lut: 0.5}}\n"
                    "board: pynq-z2\nexport: {io: stream, reuse: auto, budget: 0.9}\n")
    spec = load_flow(flow)
    assert budget_measure(spec).reuse == "auto"
    assert _fold_budget(spec) == 0.5  # the training's share, below the export's 0.9
    r = run_flow(spec, out_dir=tmp_path / "run", progress=False, skip=("csim",))
    crit = {c.name: c for c in r.criteria}
    assert crit["budget_met"].passed and crit["fits_board"].passed, str(crit)
    history = json.loads((tmp_path / "run" / "train" / "history.json").read_text())
    assert len(history) == 2
    assert all(rec["resources"]["lut"] < 26_600 for rec in history)  # never fully parallel
