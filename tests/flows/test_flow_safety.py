"""Flows: their output folder, a stale result after an interrupted run (issue #17, items 1, 3)."""

import json

import pytest

import qfx.data
from qfx.flows.flow import run_flow

FLOW = {"dataset": "digits", "model": "digits_cnn", "quantization": {"bits": 8}}


def test_refuses_a_user_folder(tmp_path):
    user = tmp_path / "docs"
    user.mkdir()
    (user / "report.md").write_text("my report")
    with pytest.raises(FileExistsError, match="not a flow output folder"):
        run_flow(FLOW, out_dir=user, progress=False)
    assert (user / "report.md").read_text() == "my report"
    assert sorted(p.name for p in user.iterdir()) == ["report.md"]


def test_interrupted_run_leaves_no_pass(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    old = {"format": "qfx-flow", "status": "finished", "name": "digits_cnn", "ok": True,
           "reason": "", "stages": [], "criteria": [], "metrics": {}}
    (out / "flow.json").write_text(json.dumps(old))
    (out / "report.md").write_text("# qfx flow `digits_cnn`\n\n**Result: PASS**\n")
    junit = tmp_path / "junit.xml"
    junit.write_text('<testsuites><testsuite name="qfx-flow.digits_cnn"/></testsuites>')

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(qfx.data, "get_dataset", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_flow(FLOW, out_dir=out, junit=junit, progress=False)
    doc = json.loads((out / "flow.json").read_text())
    assert doc["ok"] is False and doc["status"] == "running" and doc["previous"] == old
    report = (out / "report.md").read_text()
    assert report.startswith("> **STALE**") and "Result: PASS" not in report
    assert not junit.exists()
    # a legacy (pre-"format") summary still counts as a flow folder; running twice is fine
    with pytest.raises(KeyboardInterrupt):
        run_flow(FLOW, out_dir=out, progress=False)
    assert (out / "report.md").read_text().count("STALE") == 2  # banner + result, not doubled


BASE = ("dataset: digits\nmodel: digits_cnn\nquantization: {bits: 8}\n"
        "training: {epochs: 1}\n")


@pytest.mark.parametrize("extra, key", [
    ("board: ultra69\n", ".board:"),
    ("board: missing/board.yaml\n", ".board:"),
    ("export: {io: serial}\n", ".export.io:"),
    ("export: {on_budget: maybe}\n", ".export.on_budget:"),
    ("export: {project_name: int}\n", ".export.project_name:"),
    ("export: {project_name: 2fast}\n", ".export.project_name:"),
    ("export: {clock_mhz: -5}\n", ".export.clock_mhz:"),
    ("csim: {jobs: 0}\n", ".csim.jobs"),
    ("csim: {timeout: 0}\n", ".csim.timeout"),
    ("csim: {samples: 0}\n", ".csim.samples"),
    ("flow: {criteria: {min_accuracy: -0.5}}\n", ".flow.criteria.min_accuracy"),
    ("flow: {criteria: {budget_met: true}}\n", ".flow.criteria.budget_met"),
])
def test_every_stage_is_validated_when_the_flow_loads(tmp_path, monkeypatch, capsys, extra, key):
    from qfx.cli import EXIT_USAGE, main

    def never(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(qfx.data, "get_dataset", never)
    flow = tmp_path / "f.yaml"
    flow.write_text(BASE + extra)
    assert main(["flow", "run", str(flow), "--out", str(tmp_path / "o")]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(flow) in err[0] and key in err[0], err
    assert not (tmp_path / "o").exists()


def test_out_dir_of_the_flow_is_checked_when_it_loads(tmp_path):
    from qfx.flows.flow import load_flow

    user = tmp_path / "mine"
    user.mkdir()
    (user / "a.txt").write_text("x")
    flow = tmp_path / "f.yaml"
    flow.write_text(BASE + f"out_dir: {user}\n")
    with pytest.raises(ValueError, match=r"f\.yaml\.out_dir: .* not a flow output folder"):
        load_flow(flow)
