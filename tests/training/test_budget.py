"""Resource-aware training: the controller brings a learned-width model to a stated budget."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import qfx
from qfx.data import synthetic_classification
from qfx.fixed.learned_width import width_quantizers
from qfx.flows.measure import estimate_measure
from qfx.nn import QConfig, QInput, QLinear, QReLU
from qfx.training import plot_history, train
from qfx.training.budget import BudgetController, BudgetRegularizer
from qfx.training.trainer import Regularizer, lr_at


def test_controller_weights_follow_the_budget():
    c = BudgetController({"dsp": 10.0}, rate=0.5)
    for _ in range(5):
        c.update({"dsp": 40.0})
    high = c.weights["dsp"]
    assert high > c.initial
    for _ in range(5):
        c.update({"dsp": 1.0})
    assert c.weights["dsp"] < high


def test_controller_stops_winding_up_while_the_cost_falls_fast_enough():
    """Anti-windup: a cost over target but falling by 2% a step reaches the target in about
    60 steps; with 1000 steps left the integral stops growing once the trend shows it, with
    10 left (or none given) it keeps growing."""
    def run(steps_left):
        c = BudgetController({"lut": 1000.0}, trend_steps=5)
        used, history = 3000.0, []
        for _ in range(30):
            c.update({"lut": used}, steps_left)
            history.append(c.integral["lut"])
            used *= 0.98
        return history

    held, short, free = run(1000), run(10), run(None)
    assert held[-1] == held[0] < short[-1] == free[-1]
    assert free[-1] > free[10]
    assert held[0] > math.log(1e-3)  # the first step, before any trend, integrates


def test_the_trainer_tells_the_regularizer_the_steps_before_its_settle_phase():
    class Recorder(Regularizer):
        settle = 0.5

        def __init__(self):
            self.planned = []

        def plan(self, steps):
            self.planned.append(steps)

        def step_penalty(self):
            return torch.zeros(())

    torch.manual_seed(0)
    train_set, test_set = synthetic_classification(64, (4,), num_classes=2)
    rec = Recorder()
    train(nn.Sequential(nn.Linear(4, 2)), train_set, test_set, epochs=4, batch_size=16,
          progress=False, regularizer=rec)
    batches = math.ceil(len(train_set) / 16)
    assert batches > 1 and rec.planned == [2 * batches]  # 2 epochs before the settle phase


def test_controller_reaches_a_stated_budget(tmp_path):
    torch.manual_seed(0)
    train_set, test_set = synthetic_classification(512, (16,), num_classes=4)
    with qfx.config(QConfig(learn_widths=True, width_granularity="element")):
        net = nn.Sequential(QInput(8), QLinear(16, 12), QReLU(), QLinear(12, 4))
    with qfx.calibration(net):
        net(train_set.tensors[0][:256])
    reg = BudgetRegularizer(net, train_set.tensors[0][:2], {"dsp": 60.0})
    start = reg.controller.used({k: float(v) for k, v in reg.cost().items()})["dsp"]
    assert start > 200  # 8-bit weights: one DSP per product
    res = train(net, train_set, test_set, epochs=5, lr=0.05, batch_size=16, schedule="constant",
                progress=False, regularizer=reg)
    last = res.history[-1]
    assert last["fits_budget"] and last["resources"]["dsp"] <= 60.0
    assert last["widths"]["1.weight_quantizer"] < 8.0
    assert last["test_acc"] > 0.5  # chance: 0.25
    # the training plot shows the widths and the resources over time
    assert plot_history(res.history, tmp_path / "h.png").stat().st_size > 1000


def test_a_wide_start_meets_the_budget_by_the_end_of_training():
    # 16-bit start: one DSP per product, 240 in all; the controller drives the widths down and
    # the guarantee step after the last epoch coarsens formats until the exact count fits.
    torch.manual_seed(0)
    train_set, test_set = synthetic_classification(256, (16,), num_classes=4)
    with qfx.config(QConfig.uniform(16, learn_widths=True, width_granularity="tensor")):
        net = nn.Sequential(QInput(), QLinear(16, 12), QReLU(), QLinear(12, 4))
    with qfx.calibration(net):
        net(train_set.tensors[0])
    reg = BudgetRegularizer(net, train_set.tensors[0][:2], {"dsp": 60.0})
    assert reg.controller.used({k: float(v) for k, v in reg.cost().items()})["dsp"] == 240
    res = train(net, train_set, test_set, epochs=3, lr=0.003, batch_size=16, progress=False,
                regularizer=reg)
    weights = [r["penalty_weights"]["dsp"] for r in res.history]
    assert weights == sorted(weights) and weights[-1] > 10 * reg.controller.initial
    last = res.history[-1]
    assert last["budget"] == {"dsp": 60.0}  # the plot draws it beside the resources
    g = last["budget_guarantee"]
    assert g["fits"] and g["after"]["dsp"] <= 60.0 and g["coarsened"]
    with torch.no_grad():  # the model as it is now fits: its exact cost
        assert float(reg.cost()["dsp"]) <= 60.0
    # the record's accuracy is the final model's
    from qfx.training import evaluate
    assert evaluate(net, test_set)[1] == last["test_acc"]


def test_the_controller_relaxes_under_its_target():
    c = BudgetController({"dsp": 10.0})
    c.update({"dsp": 5.0})
    assert c.weights["dsp"] < c.initial  # under target: the weight relaxes


def _settling_net(samples: int):
    """A calibrated learned-width MLP and a synthetic 4-class (train, test) split."""
    torch.manual_seed(0)
    train_set, test_set = synthetic_classification(samples, (16,), num_classes=4)
    with qfx.config(QConfig(learn_widths=True)):
        net = nn.Sequential(QInput(8), QLinear(16, 12), QReLU(), QLinear(12, 4))
    with qfx.calibration(net):
        net(train_set.tensors[0])
    return net, train_set, test_set


def test_the_settle_phase_holds_the_formats_and_releases_them_after_training():
    net, train_set, test_set = _settling_net(128)
    formats = [p for n, p in net.named_parameters() if n.endswith(("log2_lsb", "log2_range"))]
    seen = []
    reg = BudgetRegularizer(net, train_set.tensors[0][:2], {"lut": 1e6}, settle=0.5)
    res = train(net, train_set, test_set, epochs=4, lr=0.01, batch_size=32, progress=False,
                regularizer=reg, plot=False,
                callbacks=[lambda e, r, m: seen.append([p.clone() for p in formats]) and False])
    assert all(torch.equal(a, b) for a, b in zip(seen[2], seen[3], strict=True))  # held
    assert len(res.history) == 4 and all(p.requires_grad for p in formats)  # released
    assert not reg.held
    # the settle epochs restart the schedule, from settle_lr x the base rate
    assert [r["lr"] for r in res.history] == [
        lr_at("cosine", 0.01, 0, 4), lr_at("cosine", 0.01, 1, 4),
        lr_at("cosine", 0.01 * reg.settle_lr, 0, 2), lr_at("cosine", 0.01 * reg.settle_lr, 1, 2)]


def test_the_guarantee_step_ranks_the_formats_the_settle_phase_holds():
    """The settle phase holds the formats (no gradient), but its fine-tuned weights may widen a
    constant's range past the budget: the closing guarantee step still ranks the formats by
    the cost's gradient, coarsens them until the model fits, and leaves them held."""
    torch.manual_seed(0)
    x = torch.randn(64, 16)
    with qfx.config(QConfig(learn_widths=True, width_granularity="element")):
        net = nn.Sequential(QInput(8), QLinear(16, 12), QReLU(), QLinear(12, 4))
    with qfx.calibration(net):
        net(x)
    reg = BudgetRegularizer(net, x[:2], {"dsp": 16.0})
    reg.hold(net)
    out = reg.finish(net, x, torch.zeros(64, dtype=torch.long))["budget_guarantee"]
    assert out["fits"] and out["after"]["dsp"] <= 16.0 < out["before"]["dsp"]
    assert not any(p.requires_grad for q in width_quantizers(net).values()
                   for p in (q.log2_lsb, q.log2_range) if p is not None)


def _two_feature_task(hidden: int):
    """Inputs, labels (x0 > x1) and an uncalibrated per-channel learned-width MLP with
    ``hidden`` channels."""
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > x[:, 1]).long()
    with qfx.config(QConfig(learn_widths=True, width_granularity="channel")):
        net = nn.Sequential(QInput(8), QLinear(8, hidden), QReLU(), QLinear(hidden, 2))
    return x, y, net


def test_channel_pruning_takes_a_channel_the_loss_does_not_need_and_keeps_it_pruned():
    """A hidden channel that reaches no output costs its row and loses nothing when pruned:
    the pruning step takes it (and only it: the others carry the label), the outputs keep
    their bits, the frozen graph drops it, and further training does not bring it back."""
    x, y, net = _two_feature_task(3)
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].weight[0, :2] = torch.tensor([1.0, -1.0])  # relu(x0 - x1): says 1
        net[1].weight[1, :2] = torch.tensor([-1.0, 1.0])  # relu(x1 - x0): says 0
        net[1].weight[2] = 0.5  # reaches no output
        net[1].bias.zero_()
        net[3].weight.copy_(torch.tensor([[0.0, 4.0, 0.0], [4.0, 0.0, 0.0]]))
        net[3].bias.zero_()
    with qfx.calibration(net):
        net(x)
    reg = BudgetRegularizer(net, x[:2], {"lut_equiv": 1000.0})
    reg.controller.weights["lut_equiv"] = 0.1
    before = net.eval()(x)
    assert reg.prune(net, x, y) == ["1.weight_quantizer[2]"]
    assert torch.equal(net.eval()(x), before)
    assert qfx.freeze(net, x[:1]).node("n_1").params["weight"].shape == (2, 8)
    train(net, TensorDataset(x, y), TensorDataset(x, y), epochs=2, lr=0.05, batch_size=32,
          progress=False, plot=False, regularizer=reg)
    assert net[1].weight_quantizer.pruned().tolist() == [False, False, True]


@pytest.mark.parametrize("key,value", [("trend_steps", 0), ("rate", -0.1), ("gain", 0),
                                       ("initial", 0.0), ("target", float("nan")),
                                       ("rate", True)])
def test_controller_settings_must_be_positive_numbers(key, value):
    with pytest.raises(ValueError, match=f"BudgetController: {key} must be a positive number"):
        BudgetController({"lut": 1000.0}, **{key: value})


@pytest.mark.parametrize("value", [0, -5.0, True, "100"])
def test_budget_values_must_be_positive_numbers(value):
    with pytest.raises(ValueError, match="BudgetController: budget.lut must be a positive"):
        BudgetController({"lut": value})


def test_the_settle_phase_keeps_the_measured_resources_while_the_weights_grow():
    """A held model's constants follow their values no longer: weights and a BatchNorm scale
    that grow in fine-tuning saturate at the formats the guarantee measured (zero weights stay
    zero), so the resources
    do not grow past the budget and the closing guarantee has nothing to win back (before,
    the growth widened the formats and the last step coarsened whatever it took, at any
    accuracy cost)."""
    torch.manual_seed(0)
    x = torch.randn(256, 16)
    y = (x[:, 0] > 0).long()
    with qfx.config(QConfig(learn_widths=True, width_granularity="channel")):
        net = nn.Sequential(QInput(8), QLinear(16, 12), qfx.nn.QBatchNorm1d(12), QReLU(),
                            QLinear(12, 2))
    with qfx.calibration(net):
        net(x)
    net.eval()
    with torch.no_grad():
        net[1].weight[:, 0] = 0.0  # a zero weight costs no multiplier
    per_layer = estimate_measure(board="ultra96", reuse=1)  # the export estimate
    reg = BudgetRegularizer(net, x[:2], {"lut": 1e9}, measure=lambda m: per_layer(m, x[:1]))
    reg.hold(net)
    held = reg._measure(net).total
    with torch.no_grad():
        net[1].weight[:, 0] = net[1].weight.abs().amax(1)  # zero weights that grow stay 0
    assert reg._measure(net).total == held
    with torch.no_grad():
        net[1].weight.mul_(8.0)
        net[4].weight.mul_(8.0)
        net[2].weight.mul_(8.0)  # the BatchNorm scale
    grown = reg._measure(net).total
    # the formats and the zero pattern are held; the accumulators follow the values (the
    # estimate bounds them by the constants themselves), FFs can move a little
    assert grown["lut_equiv"] <= held["lut_equiv"] and grown["dsp"] <= held["dsp"]
    reg.controller.budget = {"lut_equiv": held["lut_equiv"]}
    assert reg.finish(net, x, y)["budget_guarantee"]["coarsened"] == []
    reg.release(net)  # the model keeps the formats it was evaluated with
    assert reg._measure(net).total == grown


@pytest.mark.parametrize("unfit", [None, 3])
def test_the_settle_phase_ends_on_its_best_epoch_by_the_training_samples(unfit):
    """The settle epochs share one set of formats, yet the estimate follows the values a
    little (accumulator bounds, power-of-two constants): training ends on the one best on the
    training samples (here the last is broken on purpose) among those that fit (``unfit``:
    an epoch whose record says it does not; the first model of the phase always fits), and
    the last record says which, with that model's test accuracy and resources."""
    net, train_set, test_set = _settling_net(256)
    reg = BudgetRegularizer(net, train_set.tensors[0][:2], {"lut": 1e6}, settle=0.5)

    def break_the_last(epoch, record, model):
        if epoch == unfit:
            record["fits_budget"] = False
        if epoch == 4:
            with torch.no_grad():
                model[3].weight.zero_()
        return False

    res = train(net, train_set, test_set, epochs=4, lr=0.01, batch_size=32, progress=False,
                regularizer=reg, plot=False, callbacks=[break_the_last])
    last = res.history[-1]
    assert last["settle_best_epoch"] in ((2, 3) if unfit is None else (2,))
    assert float(net[3].weight.abs().sum()) > 0
    assert res.final_test_acc == qfx.training.evaluate(net, test_set)[1] > 0.5
    assert last["resources"] == reg.epoch_record(net)["resources"]
    assert all("settle_best_epoch" not in r for r in res.history[:-1])


@pytest.mark.parametrize("cut, measured", [(3, False), (8, False), (3, True)])
def test_a_resumed_budget_run_goes_on_as_if_uninterrupted(tmp_path, cut, measured):
    """The checkpoint keeps the controller's state (weights, integral, trend), the step count
    and the guarantee's story, and inside the settle phase (epochs 7 and 8 here) the held
    formats and the phase's best model so far: a run cut after epoch 2 or 7 and resumed into
    a fresh model ends bit-identical to the uninterrupted one (weights, formats, history).
    Epochs 7 and 8 are broken on purpose: the best is the phase's first model, before the
    cut. ``measured``: the export estimate calibrates the cost (again after the resume,
    from the restored model)."""
    budget = 2000.0 if measured else 900.0

    def run(out, resume=None, cut=None):
        net, train_set, test_set = _settling_net(256)
        x = train_set.tensors[0][:2]
        measure = estimate_measure(board="ultra96", reuse=4) if measured else None
        reg = BudgetRegularizer(net, x, {"lut": budget}, settle=0.25,
                                measure=measure and (lambda m: measure(m, x[:1])))

        def stop(epoch, record, model):
            if epoch >= 7:
                with torch.no_grad():
                    model[3].weight.zero_()
            if epoch == cut:
                raise KeyboardInterrupt  # after epoch cut-1's checkpoint, before epoch cut's
            return False

        res = train(net, train_set, test_set, epochs=8, lr=0.01, batch_size=32, seed=3,
                    progress=False, plot=False, regularizer=reg, out_dir=out,
                    checkpoint_every=1, resume_from=resume, callbacks=[stop])
        return res, reg

    straight, reg = run(tmp_path / "straight")
    assert straight.history[0]["resources"]["lut"] > budget >= \
        straight.history[-1]["resources"]["lut"]  # the controller had work to do
    assert straight.history[-1]["settle_best_epoch"] == 6
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", cut=cut)
    resumed, again = run(tmp_path / "resumed", resume=tmp_path / "cut" / "checkpoint.npz")
    assert again.controller.state() == reg.controller.state()
    for (k, a), (_, b) in zip(straight.model.state_dict().items(),
                              resumed.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in straight.history]


def test_channel_pruning_tries_a_bounded_number_of_the_quietest_channels(monkeypatch):
    """Each pruning trial freezes and estimates the model: a model with more candidate
    channels than the cap tries only that many, the quietest of each layer first, and a
    channel that reaches no output is among them and pruned."""
    import qfx.training.budget as budget_module

    monkeypatch.setattr(budget_module, "_PRUNE_TRIALS", 4)
    x, y, net = _two_feature_task(12)
    with torch.no_grad():
        net[1].weight[5] = 0.02 * net[1].weight[5].sign()  # the quietest channel
        net[3].weight[:, 5] = 0.0  # and it reaches no output
    with qfx.calibration(net):
        net(x)
    calls = []

    def measure(m):  # 10 LUTs per live hidden channel
        calls.append(1)
        q = m[1].weight_quantizer
        return {"lut_equiv": 10.0 * float((q.to_int(m[1].weight) != 0).any(1).sum())}

    reg = BudgetRegularizer(net, x[:2], {"lut_equiv": 1000.0}, measure=measure)
    reg.controller.weights["lut_equiv"] = 0.1
    calls.clear()
    pruned = reg.prune(net, x, y)
    assert "1.weight_quantizer[5]" in pruned
    assert len(calls) <= 1 + 4 + len(pruned)  # the start, the capped trials, re-trials


def _small_mlp(granularity: str):
    """A calibrated 8-6-3 learned-width MLP, its synthetic data and its budget regularizer
    factory (LUT + 55 DSP of the export estimate at reuse 4)."""
    torch.manual_seed(1)
    train_set, test_set = synthetic_classification(64, (8,), num_classes=3)
    with qfx.config(QConfig(learn_widths=True, width_granularity=granularity)):
        net = nn.Sequential(QInput(8), QLinear(8, 6), QReLU(), QLinear(6, 3))
    with qfx.calibration(net):
        net(train_set.tensors[0])
    x = train_set.tensors[0]
    measure = estimate_measure(board="ultra96", reuse=4)

    def regularizer(lut_equiv: float, **kw) -> BudgetRegularizer:
        return BudgetRegularizer(net, x[:1], {"lut_equiv": lut_equiv},
                                 measure=lambda m: measure(m, x[:1]), **kw)

    return net, train_set, test_set, measure, regularizer


@pytest.mark.parametrize("granularity", ["tensor", "channel", "element"])
def test_a_budget_below_the_least_cost_is_refused_before_training(granularity):
    net, train_set, test_set, measure, regularizer = _small_mlp(granularity)
    x, y = train_set.tensors

    before = {k: v.clone() for k, v in net.state_dict().items()}
    least = regularizer(1e9).least(net).total["lut_equiv"]
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # restored
    assert least < measure(net, x[:1]).total["lut_equiv"]
    with pytest.raises(ValueError, match=r"cannot be met: lut_equiv [\d,]+ of [\d,]+ with"):
        train(net, train_set, test_set, epochs=2, batch_size=16, progress=False, plot=False,
              regularizer=regularizer(0.99 * least))
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # untrained
    # a bound: the guarantee, pruning included, stops at or above it when asked for less
    with pytest.raises(RuntimeError, match="budget not reached"):
        regularizer(least / 2).finish(net, x, y)
    assert measure(net, x[:1]).total["lut_equiv"] >= least


def test_the_guarantee_prunes_channels_once_every_format_is_at_its_floor():
    """Between the least cost and what the narrowest formats cost, only whole channels can
    go: the guarantee prunes them (it raised 'no learned format can shrink further'). The
    pruning that weighs the penalised objective first is off: this is the guarantee's."""
    net, train_set, _, measure, regularizer = _small_mlp("channel")
    x, y = train_set.tensors
    budget = 1.03 * regularizer(1e9).least(net).total["lut_equiv"]
    out = regularizer(budget, prune_channels=False).finish(net, x, y)["budget_guarantee"]
    assert out["fits"] and out["pruned"] and out["after"]["lut_equiv"] <= budget
    assert measure(net, x[:1]).total == out["after"]
    assert all(n.startswith("1.weight_quantizer[") for n in out["pruned"])  # not the output


def test_bad_budget_inputs_get_one_clear_error():
    torch.manual_seed(0)
    x = torch.randn(8, 4)
    fixed = qfx.quantize_model(nn.Sequential(nn.Linear(4, 2)), {"bits": 4}, x)
    with pytest.raises(ValueError, match="the model learns no widths: a budget needs them"):
        BudgetRegularizer(fixed, x[:1], {"lut": 100.0})
    learned = qfx.quantize_model(nn.Sequential(nn.Linear(4, 2)),
                                 {"bits": 4, "learn_widths": True}, x)
    with pytest.raises(ValueError, match=r"example input of shape \(1, 5\) does not run"):
        BudgetRegularizer(learned, torch.randn(1, 5), {"lut": 100.0})
    with pytest.raises(ValueError, match="budget names no resource"):
        BudgetRegularizer(learned, x[:1], {})


@pytest.mark.parametrize("overflow", ["WRAP", "SAT_SYM", "AP_SAT_ZERO"])
def test_learned_widths_refuse_an_overflow_mode_they_would_replace(overflow):
    with pytest.raises(ValueError, match=f"learn_widths saturates.*act_overflow='{overflow}'"):
        QConfig(learn_widths=True, act_overflow=overflow)
    assert QConfig(learn_widths=True, act_overflow="AP_SAT").learn_widths
