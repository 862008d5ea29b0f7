"""A flow that starts with post-training quantisation: float model -> HPTQ -> (QFX fine-tuning)
-> freeze -> export -> C-sim, bit-exact; its section is validated before anything runs."""

import numpy as np
import pytest
import torch

from qfx.flows.flow import load_flow, run_flow


def _flow(**ptq):
    return {"name": "ptq-test", "dataset": "digits", "model": "digits_cnn",
            "training": {"batch_size": 64, "lr": 0.003},
            "ptq": {"float_epochs": 2, "calib_samples": 64, **ptq}, "board": "ultra96",
            "export": {"reuse": "auto", "budget": 0.9}, "csim": {"samples": 24},
            "flow": {"criteria": {"min_accuracy": 0.5}}}


def test_ptq_flow_with_finetuning_is_bit_exact(tmp_path):
    spec = load_flow(_flow(finetune_epochs=1, config={"weight_bits": 6, "act_bits": 8}))
    r = run_flow(spec, out_dir=tmp_path / "run", progress=False)
    assert [(s.name, s.status) for s in r.stages][:5] == [
        ("ptq", "passed"), ("train", "passed"), ("freeze", "passed"), ("export", "passed"),
        ("csim", "passed")], r.stages
    assert r.ok, r.reason
    m = r.metrics
    assert m["ptq_calibration"] == "real" and 0.0 < m["ptq_accuracy"] <= 1.0
    assert m["csim_proven"] == {"native": 24, "synth": 24}
    report = r.report.read_text()
    assert "Post-training quantisation" in report and "W6A8" in report
    # the frozen model is the fine-tuned one: its exact eval accuracy is the flow's
    from qfx.data import get_dataset
    from qfx.ir.executor import run_graph
    from qfx.ir.serialize import load_graph

    split = get_dataset("digits")
    x, y = split.test.tensors
    graph = load_graph(r.out_dir / "model.qfx.npz")
    acc = float((run_graph(graph, x.numpy()).outputs[0].argmax(1) == y.numpy()).mean())
    assert acc == pytest.approx(m["test_accuracy"], abs=1e-12)


def test_ptq_only_flow_skips_training(tmp_path):
    spec = load_flow(_flow(calib="noise", float_epochs=1))
    r = run_flow(spec, out_dir=tmp_path / "run", progress=False, skip=("csim",))
    status = {s.name: s.status for s in r.stages}
    assert status["ptq"] == "passed" and status["freeze"] == "passed"
    assert status["train"] == "skipped" and "PTQ only" in r.stages[1].message
    assert r.metrics["ptq_calibration"] == "noise"
    assert "noise" in (r.out_dir / "ptq.md").read_text()


@pytest.mark.parametrize("change, message", [
    ({"ptq": {"calib": "imagenet"}}, "ptq.calib: invalid value 'imagenet'"),
    ({"ptq": {"finetune_epochs": -1}}, "ptq.finetune_epochs must be at least 0"),
    ({"ptq": {"float_model": "missing.onnx"}}, "missing.onnx: no such file"),
    ({"ptq": {"config": {"weight_bitz": 8}}}, "ptq.config"),
    ({"ptq": {"epochs": 3}}, "ptq.epochs: unknown key"),
    ({"quantization": {"bits": 8}}, "remove the `quantization:` section"),
])
def test_ptq_section_is_validated_at_load(change, message):
    flow = _flow()
    for key, value in change.items():
        flow[key] = {**flow.get(key, {}), **value} if key == "ptq" else value
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("`", "`")):
        load_flow(flow)


def test_ptq_flow_takes_a_float_onnx_model(tmp_path):
    """ptq.float_model: the float ONNX file is converted and quantised (no float training)."""
    from qfx.zoo import get_model

    torch.manual_seed(0)
    net = get_model("digits_cnn", num_classes=10).eval()
    path = tmp_path / "float.onnx"
    torch.onnx.export(net, torch.randn(1, 1, 8, 8), str(path), dynamo=False)
    flow = _flow(float_model=str(path))
    r = run_flow(load_flow(flow), out_dir=tmp_path / "run", progress=False,
                 skip=("export", "csim"))
    assert r.stages[0].status == "passed", r.stages[0].message
    assert not (r.out_dir / "float").exists()  # nothing trained in float
    assert np.isfinite(r.metrics["float_accuracy"])
