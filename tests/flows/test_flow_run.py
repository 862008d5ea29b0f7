"""`qfx flow run`: the digits flow end to end (few epochs) is bit-exact, writes its report and
JUnit XML, and a failing criterion gives a non-zero exit with a one-line reason."""

import xml.etree.ElementTree as ET

import pytest

from qfx.cli import main
from qfx.flows.flow import load_flow, run_flow


@pytest.fixture(scope="module")
def digits_flow(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow")
    spec = load_flow("flows/digits-ultra96.yaml")
    spec.csim["samples"] = 120
    return run_flow(spec, out_dir=out, junit=out / "junit.xml", epochs=2, progress=False)


def test_digits_flow_is_bit_exact_and_reports(digits_flow):
    r = digits_flow
    assert [s.name for s in r.stages] == ["train", "freeze", "export", "csim", "synth"]
    assert [s.status for s in r.stages][:4] == ["passed"] * 4
    assert r.stages[4].status == "skipped"  # no Vitis HLS on this machine
    assert r.metrics["bit_exact"] is True and r.metrics["csim_mismatches"] == 0
    assert r.metrics["csim_samples"] == 120
    # both arithmetic paths are proven by default: the native C-sim and the synthesized code
    assert r.metrics["csim_proven"] == {"native": 120, "synth": 120}
    exact = {c.name: c.passed for c in r.criteria}
    assert exact["bit_exact"] and exact["fits_board"]
    report = r.report.read_text()
    assert "bit_exact" in report and "estimate" in report
    assert (r.out_dir / "train" / "training.png").is_file()
    assert (r.out_dir / "hls" / "build_prj.tcl").is_file()
    suite = ET.parse(r.junit).getroot().find("testsuite")
    names = {c.get("name") for c in suite.iter("testcase")}
    assert {"stage.csim", "criterion.bit_exact", "csim.native", "csim.synth"} <= names
    assert "-DQFX_AP_ARITH" in report
    assert suite.get("skipped") == "1"
    # the logits' format holds them (no clipping to tie the argmax), and the report says so
    sat = r.metrics["output_saturation"]
    assert sat["node"] == "fc" and sat["values"] == 3600 and sat["samples"] == 360
    assert sat["clipped"] <= 0.01 * sat["values"] and sat["ties_at_max"] == 0
    assert "Output saturation on the test set: output fc" in report


def test_failing_criterion_exits_non_zero_with_a_reason(tmp_path, capsys):
    flow = tmp_path / "strict.yaml"
    flow.write_text(
        "dataset: {name: synthetic, n: 96, shape: [1, 8, 8]}\nmodel: digits_cnn\n"
        "quantization: {bits: 6}\ntraining: {epochs: 1, batch_size: 32}\n"
        "export: {reuse: 64}\ncsim: {samples: 8}\n"
        "flow: {criteria: {min_accuracy: 1.01}}\n")
    rc = main(["flow", "run", str(flow), "--out", str(tmp_path / "out"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "FAIL: criterion min_accuracy failed" in out
    assert "PASS  bit_exact" in out  # the hardware still matches the (inaccurate) model


def test_flow_config_errors_are_one_line(tmp_path, capsys):
    flow = tmp_path / "bad.yaml"
    flow.write_text("dataset: digits\nmodel: digits_cnn\nquantization: {bits: 8}\n"
                    "export: {reuse: many}\n")
    assert main(["flow", "run", str(flow)]) == 2
    err = capsys.readouterr().err
    assert "export.reuse" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="quantization"):
        load_flow({"dataset": "digits", "model": "digits_cnn"})
    assert main(["flow", "run", "no-such-flow"]) == 2
    assert "shipped flows" in capsys.readouterr().err


def test_flow_export_reuse_may_be_per_layer():
    spec = load_flow({"dataset": "digits", "model": "digits_cnn", "quantization": {"bits": 8},
                      "export": {"reuse": {"fc": 1, "*": 32}}})
    assert spec.export["reuse"] == {"fc": 1, "*": 32}
    with pytest.raises(ValueError, match="export.reuse"):
        load_flow({"dataset": "digits", "model": "digits_cnn", "quantization": {"bits": 8},
                   "export": {"reuse": {"fc": 0}}})


def test_bad_quantization_section_fails_when_the_flow_is_loaded():
    with pytest.raises(ValueError, match=r"quantization: QConfig.input_width"):
        load_flow({"dataset": "digits", "model": "digits_cnn", "quantization": {"bits": 99}})


def test_resume_continues_an_interrupted_training(tmp_path):
    """A checkpoint with fewer epochs than the flow asks for is continued, not taken as done;
    a finished one is reused."""
    out = tmp_path / "flow"
    skip = ("export", "csim", "synth")
    first = run_flow(load_flow("flows/digits-ultra96.yaml"), out_dir=out, epochs=1, skip=skip,
                     progress=False)  # as if interrupted after epoch 1 of 2
    assert first.stages[0].status == "passed"
    again = run_flow(load_flow("flows/digits-ultra96.yaml"), out_dir=out, epochs=2, skip=skip,
                     progress=False, resume=True)
    train = again.stages[0]
    assert train.status == "passed" and "continued from epoch 1/2" in train.message, train
    done = run_flow(load_flow("flows/digits-ultra96.yaml"), out_dir=out, epochs=2, skip=skip,
                    progress=False, resume=True)
    assert done.stages[0].message.startswith("resumed from"), done.stages[0]
