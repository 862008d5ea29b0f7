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
