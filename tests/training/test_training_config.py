"""The YAML training config, run_training and the ``qfx train`` subcommand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import qfx
import qfx.nn
from qfx.cli.train import main
from qfx.training import (
    CheckpointError,
    ConfigError,
    load_checkpoint,
    load_train_config,
    parse_train_config,
    restore_model,
    run_training,
    save_checkpoint,
)
from qfx.zoo import get_model

SYNTHETIC = {"name": "synthetic", "n": 160, "shape": [1, 8, 8], "num_classes": 3, "seed": 0}


def _write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_minimal_config_defaults_and_shorthand(tmp_path: Path) -> None:
    cfg = load_train_config(_write(tmp_path, "dataset: digits\nmodel: digits_cnn\n"))
    assert (cfg.name, cfg.dataset, cfg.model) == ("flow", "digits", "digits_cnn")
    assert cfg.dataset_options == {} and cfg.model_options == {}
    assert cfg.training.epochs == 10 and cfg.training.optimizer == "adam"
    assert cfg.quantization is None and cfg.out_dir is None and cfg.extra == {}


def test_full_config_and_passthrough_sections(tmp_path: Path) -> None:
    text = """
name: cifar_r8
dataset: {name: cifar10, root: ~/data/cifar-10-batches-py, normalize: standard}
model: {name: resnet8, num_classes: 10}
training:
  epochs: 30
  batch_size: 128
  lr: 1e-3            # PyYAML reads this as a string; it is accepted as a number
  optimizer: sgd
  schedule: step
  weight_decay: 5e-4
  device: cuda:0
  augment: crop_flip
quantization: {bits: 8, rounding: RND, overflow: SAT}
export: {board: ultra96v2}
out_dir: runs/r8
"""
    cfg = load_train_config(_write(tmp_path, text))
    assert cfg.name == "cifar_r8" and cfg.out_dir == Path("runs/r8")
    assert cfg.dataset_options == {"root": "~/data/cifar-10-batches-py", "normalize": "standard"}
    assert cfg.model_options == {"num_classes": 10}
    t = cfg.training
    assert (t.epochs, t.batch_size, t.lr, t.optimizer, t.schedule, t.weight_decay, t.device,
            t.augment) == (30, 128, 1e-3, "sgd", "step", 5e-4, "cuda:0", "crop_flip")
    assert cfg.quantization == {"bits": 8, "rounding": "RND", "overflow": "SAT"}
    assert cfg.extra == {"export": {"board": "ultra96v2"}}
    assert json.loads(json.dumps(cfg.to_dict()))["quantization"]["bits"] == 8


@pytest.mark.parametrize("raw, match", [
    ([1, 2], "a training config must be a YAML mapping, got list"),
    ({"dataset": "digits"}, "missing required key 'model'"),
    ({"dataset": "digits", "model": "digits_cnn", "trainig": {}},
     "unknown top-level key 'trainig'; allowed: name, dataset, model, training, quantization"),
    ({"dataset": "mnist", "model": "digits_cnn"},
     "dataset.name: unknown dataset 'mnist'; allowed: digits, cifar10, synthetic"),
    ({"dataset": {"seed": 1}, "model": "digits_cnn"}, "dataset.name is missing"),
    ({"dataset": {"name": "digits", "sed": 1}, "model": "digits_cnn"},
     "dataset: unknown option 'sed' for 'digits'; allowed: test_fraction, seed"),
    ({"dataset": "cifar10", "model": "resnet8"}, "dataset: 'cifar10' needs option 'root'"),
    ({"dataset": "digits", "model": "resnet9"},
     "model.name: unknown model 'resnet9'; allowed: digits_cnn, resnet8, resnet20"),
    ({"dataset": "digits", "model": {"name": "resnet8", "width": 2}},
     "model: unknown option 'width' for 'resnet8'; allowed: num_classes"),
    ({"dataset": "digits", "model": "digits_cnn", "training": {"epoch": 3}},
     "training: unknown key 'epoch'; allowed: epochs, batch_size, lr"),
    ({"dataset": "digits", "model": "digits_cnn", "training": {"optimizer": "rmsprop"}},
     "training.optimizer: invalid value 'rmsprop'; allowed: adam, sgd"),
    ({"dataset": "digits", "model": "digits_cnn", "training": {"schedule": "poly"}},
     "training.schedule: invalid value 'poly'; allowed: cosine, step, constant"),
    ({"dataset": "digits", "model": "digits_cnn", "training": {"epochs": "ten"}},
     "training.epochs must be an integer >= 1, got 'ten'"),
    ({"dataset": "digits", "model": "digits_cnn", "training": {"epochs": 2.5}},
     "training.epochs must be an integer >= 1, got 2.5"),
    ({"dataset": "digits", "model": "digits_cnn", "training": {"lr": 0}},
     "training.lr must be a positive number, got 0"),
    ({"dataset": "digits", "model": "digits_cnn", "training": {"lr": "fast"}},
     "training.lr must be a positive number, got 'fast'"),
    ({"dataset": "digits", "model": "digits_cnn", "training": {"momentum": 1.0}},
     r"training.momentum must be a number in \[0, 1\)"),
    ({"dataset": "digits", "model": "digits_cnn", "training": {"device": "gpu"}},
     "training.device: invalid device 'gpu'"),
    ({"dataset": "digits", "model": "digits_cnn", "training": {"augment": "mixup"}},
     "training.augment: invalid value 'mixup'; allowed: none, crop_flip, flip"),
    ({"dataset": "digits", "model": "digits_cnn", "quantization": 8},
     "quantization must be a mapping, got 8"),
    ({"dataset": "digits", "model": "digits_cnn", "out_dir": 3}, "out_dir must be a path"),
])
def test_config_errors_name_the_key(raw: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_train_config(raw, source="flow.yaml")


def test_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_train_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        load_train_config(_write(tmp_path, "dataset: [digits\n", "bad.yaml"))
    # safe_load: python tags are refused, never constructed.
    evil = _write(tmp_path, "dataset: !!python/object/apply:os.system ['true']\nmodel: x\n")
    with pytest.raises(ConfigError, match="invalid YAML.*python/object/apply"):
        load_train_config(evil)


def _synthetic_config(tmp_path: Path, **extra: object) -> dict:
    return {"dataset": dict(SYNTHETIC), "model": "digits_cnn",
            "training": {"epochs": 2, "lr": 0.01, "batch_size": 32},
            "out_dir": str(tmp_path / "run"), **extra}


def test_run_training_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    cfg = parse_train_config(_synthetic_config(tmp_path), source=tmp_path / "syn.yaml")
    result = run_training(cfg, progress=False)
    assert len(result.history) == 2 and result.metadata["quantized"] is False
    # num_classes comes from the dataset when the model config does not set it.
    assert result.metadata["model_kwargs"] == {"num_classes": 3}
    model = get_model("digits_cnn", num_classes=3)
    side = load_checkpoint(result.checkpoint, model)
    assert side["epoch"] == 2 and side["metadata"]["config"]["dataset"]["name"] == "synthetic"
    again = run_training(cfg, progress=False)  # seeded: the same run twice
    assert again.history[-1]["train_loss"] == result.history[-1]["train_loss"]


def test_restore_float_model(tmp_path: Path) -> None:
    result = run_training(parse_train_config(_synthetic_config(tmp_path)), progress=False)
    model, side = restore_model(result.checkpoint)
    assert side["epoch"] == 2
    x = torch.randn(5, 1, 8, 8)
    assert torch.equal(model(x), result.model.eval()(x))
    plain = save_checkpoint(tmp_path / "plain.npz", model)
    with pytest.raises(CheckpointError, match="was not written by run_training"):
        restore_model(plain)


def test_input_shape_mismatch(tmp_path: Path) -> None:
    raw = _synthetic_config(tmp_path)
    raw["model"] = "resnet8"
    with pytest.raises(ConfigError, match=r"model 'resnet8' expects inputs \(3, 32, 32\) but "
                                          r"dataset 'synthetic' gives \(1, 8, 8\)"):
        run_training(parse_train_config(raw), progress=False)


def test_quantization_without_converter_trains_float(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(qfx.nn, "quantize_model", raising=False)
    cfg = parse_train_config(_synthetic_config(tmp_path, quantization={"bits": 6}))
    messages: list[str] = []
    result = run_training(cfg, progress=False, log=messages.append)
    assert result.metadata["quantized"] is False
    assert messages == ["qfx.quantize_model is not available in this qfx: training the float "
                        "model (the quantization section is ignored)"]


def test_quantization_uses_qfx_quantize_model(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert hasattr(qfx.nn, "quantize_model")
    cfg = parse_train_config(_synthetic_config(tmp_path, quantization={"bits": 8}))
    result = run_training(cfg, progress=False)
    assert result.metadata["quantized"] is True
    bits = result.history[-1]["int_bits"]
    assert len(bits) >= 5 and all(isinstance(v, (int, float)) for v in bits.values())
    # The checkpoint rebuilds the same fixed-point model, with the same exact outputs.
    model, side = restore_model(result.checkpoint)
    assert side["metadata"]["quantized"] is True
    x = torch.rand(16, 1, 8, 8)
    assert torch.equal(model(x), result.model.eval()(x))
    monkeypatch.delattr(qfx.nn, "quantize_model")
    with pytest.raises(CheckpointError, match="holds a quantized model but qfx.quantize_model"):
        restore_model(result.checkpoint)


def test_cli_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = _synthetic_config(tmp_path)
    del raw["out_dir"]
    text = json.dumps(raw)  # JSON is valid YAML
    path = _write(tmp_path, text)
    out = tmp_path / "cli_run"
    code = main(["train", str(path), "--out-dir", str(out), "--epochs", "1", "--no-progress",
                 "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "trained digits_cnn on synthetic: 1 epochs, test accuracy" in captured.out
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.json", "checkpoint.npz", "history.json", "training.png"]
    # Resume to 2 epochs from that checkpoint.
    code = main(["train", str(path), "--out-dir", str(out), "--epochs", "2", "--no-progress",
                 "--resume", str(out / "checkpoint.npz")])
    assert code == 0
    assert [r["epoch"] for r in json.loads((out / "history.json").read_text())] == [1, 2]


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "dataset: digits\nmodel: digits_cnn\ntraining: {optimizer: lion}\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("qfx train: error: ") and "allowed: adam, sgd" in err
    good = _write(tmp_path, "dataset: digits\nmodel: digits_cnn\n", "good.yaml")
    assert main(["train", str(good), "--epochs", "0"]) == 2
    assert "command line: training.epochs must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["train", str(good), "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("quant", [None, "{bits: 4}", "{bits: 4, learn_widths: false}"])
def test_a_budget_without_learned_widths_is_refused_when_the_file_is_read(tmp_path, quant):
    from qfx.training.config import ConfigError, load_train_config

    path = tmp_path / "b.yaml"
    path.write_text("dataset: digits\nmodel: digits_cnn\n"
                    + (f"quantization: {quant}\n" if quant else "")
                    + "training: {budget: {board: ultra96, lut: 0.5}}\n")
    with pytest.raises(ConfigError, match=r"b\.yaml: training\.budget needs learned widths"):
        load_train_config(path)
