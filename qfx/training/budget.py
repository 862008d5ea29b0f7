"""Resource-aware training: a differentiable resource cost of a learned-width model and a
controller that drives its penalty weights until the model fits a budget.

The cost (:class:`ResourceCost`) is built from the primitives of the HLS estimate
(:mod:`qfx.fixed.hwcost`: the multiplier's LUT-or-DSP decision by operand widths, one LUT per
adder bit) applied to the learned widths (:meth:`WidthQuantizer.bit_widths`) of the fully
parallel design (``reuse = 1``, ``io = "parallel"``), layer by layer as the estimate's rules
count them:

* dense: one multiplier per weight, of the weight's width x the input's width (a pruned, 0-bit
  weight costs nothing), and one accumulator-wide adder per product;
* conv2d: ``min(K * P, 4096)`` multipliers (K the reduction length, P the output pixels: the
  output-channel loop is sequential), each as wide as the widest weight, and as many adders;
* BatchNorm: ``min(n, 4096)`` lanes, each a multiplier (input x widest scale) and an adder
  (when its input has a learned width: not after a layer that hands on its accumulator);
* every quantised activation, and every layer that passes one on (pooling): its bits, in
  registers (FF) and in per-value logic (LUT).

It also reports HGQ's EBOPs (sum over the multiplications of the product of the operand widths;
a convolution's kernel counted once, as HGQ2 counts it for a layer reused over the pixels) and
``lut_equiv`` = LUT + 55 x DSP (HGQ's single figure for the logic).

That model only sets the *shape* of the cost. ``measure`` (e.g. the flow's export estimate of
the frozen model at the design's reuse and architecture, per layer) calibrates it, module by
module, before the first step and after every epoch: each module's modelled cost is scaled to
its measured hardware, and what no width accounts for (I/O, control) is a constant. The
penalty therefore charges each layer's widths what that layer costs in the design being
built: at reuse 16 a convolution with 288 multipliers weighs eight times one with 36, where the
unrolled model alone would weigh them alike.

:class:`BudgetController` holds one penalty weight per budgeted resource, a PI controller on
its log: it grows while the model is over ``target`` of the budget and decays as fast once it
is under, so the widths settle at the budget whatever they start from, with no hand-tuned
penalty constant. It stops growing while the cost already falls fast enough to reach the
target before the settle phase (the trainer tells the regularizer how many steps that is):
a weight wound up past that point prunes channels the loss needs, and the widths it drove
to 0 do not come back once it decays. After training, :meth:`BudgetRegularizer.finish`
coarsens formats one bit at a time, each step measured, until the exact measurement fits.
Pruning a whole channel is a step no one-bit gradient shows; :meth:`BudgetRegularizer.prune`
tries each channel and takes those whose measured saving outweighs their loss at the
controller's price.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from qfx.nn import QConfig, QInput, QLinear, config
    >>> from qfx.fixed.quantizer import calibration
    >>> with config(QConfig(learn_widths=True)):
    ...     net = nn.Sequential(QInput(8), QLinear(16, 4))
    >>> with calibration(net):
    ...     _ = net(torch.randn(64, 16))
    >>> cost = ResourceCost(net, torch.randn(8, 16))
    >>> sorted(cost().keys())
    ['dsp', 'ebops', 'ff', 'lut', 'lut_equiv']
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from qfx.fixed.hwcost import DSP48E2_PORTS, DSP_LUT_EQUIV, adder_luts, ebops, multiplier_cost
from qfx.fixed.learned_width import (
    PRUNED_LOG2_LSB,
    WidthQuantizer,
    _ste_round,
    width_quantizers,
)
from qfx.nn.base import QLayer
from qfx.nn.linear import QConv2d, QLinear
from qfx.nn.norm import _QBatchNorm
from qfx.training.trainer import Regularizer

__all__ = ["ResourceCost", "BudgetController", "RESOURCES", "BudgetRegularizer", "Measurement",
           "lut_equiv", "DSP_LUTS"]

#: Resources a budget may name (``lut_equiv``: LUT + 55 x DSP, one figure for the logic).
RESOURCES = ("lut", "dsp", "ff", "ebops", "lut_equiv")
#: LUTs a DSP48 counts for in ``lut_equiv`` (HGQ's LUT + 55 x DSP; the LUT / DSP multiplier
#: threshold of the cost model is the same figure).
DSP_LUTS = DSP_LUT_EQUIV
_MAX_UNROLL = 4096
# A module's calibration factor stays within this factor of the whole model's.
_CALIBRATION_SPAN = 8.0
# Channels the pruning step tries at most (each trial freezes and estimates the model).
_PRUNE_TRIALS = 64


def _signed(bits: torch.Tensor, signed: bool) -> torch.Tensor:
    return bits if signed else bits + 1.0


@dataclass
class Measurement:
    """The exact resources of a model (e.g. its export estimate): ``total`` per resource and,
    optionally, ``layers``: per module path (``"features.1.0"``), that module's hardware per
    resource. A ``measure`` callback may return one, or just the totals as a mapping.

    Example:
        >>> Measurement({"lut": 900.0}, {"fc": {"lut": 700.0}}).layers["fc"]["lut"]
        700.0
    """

    total: dict[str, float]
    layers: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, measured: Measurement | Mapping[str, float]) -> Measurement:
        """A Measurement from either form, ``lut_equiv`` added where LUT and DSP are known."""
        m = measured if isinstance(measured, Measurement) else \
            cls({k: float(v) for k, v in measured.items()})
        if "lut" in m.total and "dsp" in m.total:
            m.total.setdefault("lut_equiv", lut_equiv(m.total["lut"], m.total["dsp"]))
        return m


def lut_equiv(lut: Any, dsp: Any) -> Any:
    """HGQ's single figure of a design's logic: ``LUT + 55 x DSP`` (a DSP48 counted as the
    LUTs of the multiplier it replaces).

    Example:
        >>> lut_equiv(1000, 10)
        1550
    """
    return lut + DSP_LUTS * dsp


class ResourceCost(nn.Module):
    """Differentiable LUT / DSP / FF / EBOPs of a learned-width qfx model (see the module doc).

    Built once from an example input (one forward pass records every layer's input quantizer
    and shapes); calling it returns tensors that backpropagate into the quantizers' widths.
    :meth:`layers` gives the cost module by module; :meth:`calibrate` fits it, module by
    module, to an exact measurement (the export estimate at the design's reuse and
    architecture), so that the total equals the measurement where it was taken and each
    layer's widths are charged what that layer's hardware really costs.

    Example:
        >>> from qfx.nn import QConfig, QInput, QLinear, config
        >>> from qfx.fixed.quantizer import calibration
        >>> with config(QConfig(learn_widths=True)):
        ...     net = nn.Sequential(QInput(8), QLinear(16, 4))
        >>> with calibration(net):
        ...     _ = net(torch.randn(64, 16))
        >>> float(ResourceCost(net, torch.randn(8, 16))()["dsp"]) > 0
        True
    """

    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        super().__init__()
        self._model = [model]  # not a submodule: the cost owns no parameters
        # (module, its input: a learned format, the name of the layer whose accumulator it
        # reads, or None; output pixels, output values)
        self.plan: list[tuple[str, QLayer, WidthQuantizer | str | None, int, int]] = []
        # (module, learned format whose bits its hardware holds, values): an activation's
        # own output format, or the last one for a layer that passes values on (pooling)
        self.acts: list[tuple[str, WidthQuantizer, int]] = []
        # per module, per resource: measured / modelled (calibrate); resource -> the
        # measured hardware no module's widths account for
        self.scale: dict[str, dict[str, float]] = {}
        self.offset: dict[str, float] = {}
        last: list[WidthQuantizer | str | None] = [None]
        hooks = []

        def hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            name = names[m]
            if isinstance(m, (QLinear, QConv2d, _QBatchNorm)):
                pixels = int(math.prod(out.shape[2:])) if out.dim() > 2 else 1
                self.plan.append((name, m, last[0], pixels, int(out[0].numel())))
            q = getattr(m, "output_quantizer", None)
            if isinstance(q, WidthQuantizer):
                last[0] = q
                self.acts.append((name, q, int(out[0].numel())))
            elif isinstance(m, (QLinear, QConv2d)):  # hands on its exact accumulator: the
                last[0] = name  # next layer's input is as wide as this one's accumulator
            elif last[0] is not None and not isinstance(m, _QBatchNorm):
                self.acts.append((name, last[0], int(out[0].numel())))

        names = {m: n for n, m in model.named_modules()}
        for m in model.modules():
            if isinstance(m, QLayer):
                hooks.append(m.register_forward_hook(hook))
        was = model.training
        try:
            model.eval()
            with torch.no_grad():
                model(example[:1])
        except RuntimeError as err:  # e.g. the wrong input shape: say which input
            raise ValueError(f"the example input of shape {tuple(example.shape)} does not run "
                             f"through the model: {' '.join(str(err).split())}") from None
        finally:
            for h in hooks:
                h.remove()
            model.train(was)

    @property
    def model(self) -> nn.Module:
        """The model whose widths this cost reads."""
        return self._model[0]

    def layers(self) -> dict[str, dict[str, torch.Tensor]]:
        """The modelled cost of each module (uncalibrated), per resource."""
        out: dict[str, dict[str, torch.Tensor]] = {}

        def add(name: str, k: str, v: torch.Tensor) -> None:
            per = out.setdefault(name, {})
            per[k] = per[k] + v if k in per else v

        accs: dict[str, torch.Tensor] = {}  # accumulator widths of the MAC layers
        for name, m, q_in, pixels, n_out in self.plan:
            if isinstance(q_in, str):  # reads a MAC layer's exact accumulator
                if q_in not in accs:
                    continue
                a = sa = accs[q_in]
                lsb_a = None
            elif q_in is None:
                continue
            else:
                a = q_in.bit_widths()
                sa = _signed(a, q_in.signed)
                lsb_a = _ste_round(q_in.log2_lsb)
            if isinstance(m, _QBatchNorm):
                scale = m.scale_shift(m.running_mean, m.running_var)[0]
                w = m.scale_quantizer.bit_widths(scale) \
                    if isinstance(m.scale_quantizer, WidthQuantizer) else None
                if w is None:
                    continue
                lanes = min(n_out, _MAX_UNROLL)
                wmax = w.max()
                dsp, lut = multiplier_cost(a, wmax, sa, wmax, DSP48E2_PORTS)
                acc = a + wmax
                add(name, "dsp", lanes * dsp)
                add(name, "lut", lanes * (lut + adder_luts(acc)))
                add(name, "ff", lanes * acc)
                continue
            if not isinstance(m.weight_quantizer, WidthQuantizer):
                continue
            w = m.weight_quantizer.bit_widths(m.weight)
            if w.dim() == 1:
                w = w.view(-1, *([1] * (m.weight.dim() - 1)))
            w = w.expand_as(m.weight)
            k = int(m.weight[0].numel())
            acc = a + w.max() + math.log2(max(k, 1))
            bias_q = getattr(m, "bias_quantizer", None)
            if lsb_a is not None and getattr(m, "bias", None) is not None and \
                    isinstance(bias_q, WidthQuantizer):
                # a bias finer than the products widens the accumulator by the difference
                lsb_p = lsb_a + _ste_round(m.weight_quantizer.log2_lsb).min()
                acc = acc + (lsb_p - _ste_round(bias_q.log2_lsb).min()).clamp_min(0.0)
            accs[name] = acc
            if isinstance(m, QLinear):
                dsp, lut = multiplier_cost(a, w, sa, w, DSP48E2_PORTS)
                products = (w.detach() > 0).sum()
                add(name, "dsp", dsp.sum())
                add(name, "lut", lut.sum() + products * adder_luts(acc))
                add(name, "ff", products * acc)
            else:
                mults = min(k * pixels, _MAX_UNROLL)
                wmax = w.max()
                dsp, lut = multiplier_cost(a, wmax, sa, wmax, DSP48E2_PORTS)
                add(name, "dsp", mults * dsp)
                add(name, "lut", mults * (lut + adder_luts(acc)))
                add(name, "ff", mults * acc)
            add(name, "ebops", ebops(a, w))
        for name, q, n in self.acts:  # registers and per-value logic (ReLU, pooling, casts)
            bits = n * q.bit_widths()
            add(name, "ff", bits)
            add(name, "lut", bits)
        return out

    def forward(self) -> dict[str, torch.Tensor]:
        """The total cost per resource of :data:`RESOURCES`, calibrated."""
        total = {k: torch.zeros(()) for k in RESOURCES}
        for name, per in self.layers().items():
            s = self.scale.get(name, {})
            for k, v in per.items():
                total[k] = total[k] + s.get(k, 1.0) * v
        for k, c in self.offset.items():
            total[k] = total[k] + c
        total["lut_equiv"] = lut_equiv(total["lut"], total["dsp"])
        return total

    def calibrate(self, measured: Measurement | Mapping[str, float]) -> None:
        """Fit the cost to ``measured``: with per-module numbers, each module's cost is scaled
        to its own (a module the measurement does not list, e.g. one fused away, is not
        charged); without, every module by the ratio of the totals. What the modules' widths
        do not account for (I/O, control, a module the model does not cost) is a constant
        offset, so that the calibrated total equals the measured one."""
        m = Measurement.of(measured)
        with torch.no_grad():
            per = {n: {k: float(v) for k, v in c.items()} for n, c in self.layers().items()}
        self.scale, self.offset = {}, {}
        lut_overall = 1.0
        for k in RESOURCES:
            if k == "lut_equiv" or k not in m.total:
                continue
            listed = [n for n in per if k in m.layers.get(n, {})]
            modelled_total = sum(p.get(k, 0.0) for p in per.values())
            # DSPs the model does not use yet are charged like the LUT multipliers they would
            # replace (their count folds by the same reuse), not one per modelled product: at
            # scale 1 a width crossing the LUT/DSP threshold for a few steps looked like
            # several times the budget and drove the penalty weight up 100x (digits, LUT + 55
            # DSP <= 10000, seed 2: every channel pruned, 10% accuracy)
            like_lut = k == "dsp"
            overall = (m.total[k] / modelled_total if modelled_total > 0
                       else lut_overall if like_lut else 1.0)
            for n in per:
                c, got = per[n].get(k, 0.0), m.layers.get(n, {}).get(k)
                if not listed:
                    ratio = overall
                elif got is None:
                    ratio = 0.0
                elif c <= 0 and like_lut and "lut" in self.scale.get(n, {}):
                    ratio = self.scale[n]["lut"]
                else:  # held near the overall ratio: a module modelled at almost nothing
                    # (one bit left) would otherwise get a huge factor, and its next bit
                    # would look like most of the budget
                    ratio = got / c if c > 0 else overall
                    ratio = min(max(ratio, overall / _CALIBRATION_SPAN),
                                overall * _CALIBRATION_SPAN)
                self.scale.setdefault(n, {})[k] = ratio
            modelled = sum(self.scale[n][k] * p.get(k, 0.0) for n, p in per.items())
            self.offset[k] = m.total[k] - modelled
            if k == "lut":
                lut_overall = overall


class BudgetController:
    """Penalty weights that bring a model's resources to ``budget`` (absolute numbers per
    resource of :data:`RESOURCES`); see the module docstring.

    A PI controller on the log of each weight: with ``e = log(used / (target * budget))``
    (clipped to +-2), every step adds ``rate * e`` to an integral term and the weight is
    ``exp(integral + gain * e)``: the proportional term answers at once to a model over (or
    under) its target, the integral one removes the remaining offset; both fall as soon as the
    model is under target, so the widths are released again (the integral is held between
    the weights 1e-6 and 1e4).

    Anti-windup: ``update(cost, steps_left)`` with the steps left before the formats are held
    does not integrate while the cost falls fast enough to reach the target in them (its
    trend, an average of the per-step change of ``log used`` over about ``trend_steps``
    steps, closes the gap ``e`` in fewer than ``steps_left`` steps): the weight that makes the
    widths fall at that rate is enough, and a larger one overshoots. Without ``steps_left``
    the controller always integrates.

    ``penalty(cost)`` is the term to add to the loss (each resource normalised by its budget);
    ``update(cost)`` adapts the weights after a step.

    Example:
        >>> c = BudgetController({"lut": 1000.0})
        >>> c.update({"lut": torch.tensor(2000.0)}); c.weights["lut"] > c.initial
        True
    """

    def __init__(self, budget: Mapping[str, float], *, target: float = 0.9, rate: float = 0.05,
                 gain: float = 1.0, initial: float = 1e-3, trend_steps: int = 50) -> None:
        unknown = sorted(set(budget) - set(RESOURCES))
        if unknown:
            raise ValueError(f"budget: unknown resource {unknown[0]!r}; allowed: "
                             f"{', '.join(RESOURCES)}")
        if not budget:
            raise ValueError(f"budget names no resource; allowed: {', '.join(RESOURCES)}")
        for name, v in [*((f"budget.{k}", v) for k, v in budget.items()),
                        ("target", target), ("rate", rate), ("gain", gain),
                        ("initial", initial), ("trend_steps", trend_steps)]:
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
                raise ValueError(f"BudgetController: {name} must be a positive number, got {v!r}")
        self.budget = {k: float(v) for k, v in budget.items()}
        self.target, self.rate, self.initial = float(target), float(rate), float(initial)
        self.gain = float(gain)
        self.weights = {k: self.initial for k in self.budget}
        self.integral = {k: math.log(self.initial) for k in self.budget}
        self.trend_steps = max(int(trend_steps), 1)  # 0.5 averages over one step
        # per resource: the average per-step change of log(used), and the last log(used)
        self.trend: dict[str, float] = {k: 0.0 for k in self.budget}
        self._last_log: dict[str, float] = {}

    def penalty(self, cost: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """sum_r lam_r * cost_r / budget_r."""
        return sum((self.weights[k] * cost[k] / self.budget[k] for k in self.budget),
                   torch.zeros(()))

    def used(self, cost: Mapping[str, Any]) -> dict[str, float]:
        """The budgeted resources of ``cost``, as numbers."""
        return {k: float(cost[k]) for k in self.budget}

    def update(self, cost: Mapping[str, Any], steps_left: float | None = None) -> None:
        lo, hi = math.log(1e-6), math.log(1e4)
        for k, used in self.used(cost).items():
            err = math.log(max(used, 1e-3 * self.budget[k]) / (self.target * self.budget[k]))
            err = min(max(err, -2.0), 2.0)
            now = math.log(max(used, 1e-9))
            if k in self._last_log:
                self.trend[k] += (now - self._last_log[k] - self.trend[k]) / self.trend_steps
            self._last_log[k] = now
            if not (steps_left is not None and err > 0 and self.trend[k] < 0
                    and err < -self.trend[k] * steps_left):
                self.integral[k] = min(max(self.integral[k] + self.rate * err, lo), hi)
            self.weights[k] = math.exp(min(max(self.integral[k] + self.gain * err, lo), hi))

    def fits(self, used: Mapping[str, float]) -> bool:
        return all(used.get(k, 0.0) <= v for k, v in self.budget.items())

    _STATE = ("weights", "integral", "trend", "_last_log")

    def state(self) -> dict[str, dict[str, float]]:
        """What the controller has learned (numbers only: a checkpoint's JSON sidecar)."""
        return {name: dict(getattr(self, name)) for name in self._STATE}

    def load_state(self, state: Mapping[str, Mapping[str, float]]) -> None:
        """Go on from :meth:`state` (its resources that this budget also has)."""
        for name in self._STATE:
            mine = getattr(self, name)
            mine.update({k: float(v) for k, v in state.get(name, {}).items()
                         if k in self.budget})


Measure = Callable[[nn.Module], "Measurement | Mapping[str, float]"]


class BudgetRegularizer(Regularizer):
    """The trainer's regularizer (``train(..., regularizer=...)``) that trains a learned-width
    model to ``budget``: each step adds the controlled penalty of :class:`ResourceCost` and
    updates the controller; each epoch's record gets ``resources`` (the estimate),
    ``penalty_weights`` and ``widths`` (the mean learned width of every quantizer).

    ``measure`` (optional: model -> :class:`Measurement` or totals, e.g. the export estimate
    of the frozen model at the design's reuse and architecture) calibrates the cost before the
    first step and after every epoch (every ``calibrate_every`` steps as well, if given), so
    that the penalty charges each layer's widths what its hardware costs in that design.

    ``settle`` (default 0.25): the last quarter of the epochs starts with :meth:`finish` (the
    model made to fit) and then holds every format (:meth:`hold`), so the weights fine-tune
    on formats that fit instead of training ending on the controller's last one-bit change
    of a whole tensor (each such change moves the accuracy by points at a tight budget).
    Those epochs restart the learning-rate schedule from ``settle_lr`` (default 0.5) times
    the base rate; the constants' ranges, signs and zeros are held with their steps (a
    weight that grows saturates instead of widening its format), and training ends on the
    settle epoch best on the training samples among those that fit (the trainer's rule).
    ``prune_channels`` (default True): that first :meth:`finish` first prunes the channels
    whose removal lowers the penalised objective (:meth:`prune`).

    Example:
        >>> from qfx.nn import QConfig, QInput, QLinear, config
        >>> from qfx.fixed.quantizer import calibration
        >>> with config(QConfig(learn_widths=True)):
        ...     net = nn.Sequential(QInput(8), QLinear(16, 4))
        >>> with calibration(net):
        ...     _ = net(torch.randn(64, 16))
        >>> reg = BudgetRegularizer(net, torch.randn(8, 16), {"lut": 500.0})
        >>> float(reg.step_penalty()) >= 0
        True
    """

    def __init__(self, model: nn.Module, example: torch.Tensor, budget: Mapping[str, float],
                 *, measure: Measure | None = None, calibrate_every: int | None = None,
                 settle: float = 0.25, settle_lr: float = 0.5, prune_channels: bool = True,
                 **controller: Any) -> None:
        if not (isinstance(settle_lr, (int, float)) and settle_lr > 0):
            raise ValueError(f"settle_lr must be a positive number, got {settle_lr!r}")
        if not width_quantizers(model):
            raise ValueError("the model learns no widths: a budget needs them (quantize it "
                             "with learn_widths=True, e.g. QConfig(learn_widths=True))")
        self.cost = ResourceCost(model, example)
        self.settle_lr = float(settle_lr)
        self.prune_channels = bool(prune_channels)
        self.controller = BudgetController(budget, **controller)
        self.measure = measure
        self.calibrate_every = calibrate_every
        self.settle = float(settle)
        self.held = False
        self._held: list[torch.Tensor] = []
        self.steps = 0
        self._settle_step: int | None = None  # the step the formats are held at (plan)
        self.last: dict[str, float] = {}
        self._guarantee: dict[str, Any] | None = None
        self._recalibrate = False  # load_state: calibrate before the next step

    def plan(self, steps: int) -> None:
        """``steps`` more penalised steps come before the settle phase (the trainer says so
        before its first epoch): the controller stops winding its weights up while the cost
        falls fast enough to reach the target in them (:class:`BudgetController`). A budget
        below :meth:`least` is refused here, before any training (ValueError)."""
        least = self.least(self.cost.model).total
        short = {k: v for k, v in self.controller.budget.items() if least.get(k, 0.0) > v}
        if short:
            raise ValueError(
                f"the budget cannot be met: {_usage_text(least, short)} with every format "
                f"at its narrowest (activations at one bit, each constant at one bit in one "
                f"channel or weight, the rest pruned); raise the budget or use a smaller "
                f"model")
        self._settle_step = self.steps + max(int(steps), 0)

    def least(self, model: nn.Module) -> Measurement:
        """A lower bound on what training can reach: the resources (``measure``, else the
        cost) with every learned format at its narrowest: activations at one magnitude bit,
        each constant at one bit in its largest channel or weight and every other granule
        pruned (a tensor-wide constant at one bit). What neither the widths nor pruning can
        remove (the design's I/O, the layers' fixed logic) is all that is left. The model's
        formats are restored exactly.

        Example:
            >>> from qfx.nn import QConfig, QInput, QLinear, config
            >>> from qfx.fixed.quantizer import calibration
            >>> with config(QConfig(learn_widths=True, width_granularity="channel")):
            ...     net = nn.Sequential(QInput(8), QLinear(16, 4))
            >>> with calibration(net):
            ...     _ = net(torch.randn(64, 16))
            >>> reg = BudgetRegularizer(net, torch.randn(8, 16), {"lut": 500.0})
            >>> reg.least(net).total["lut"] < reg.cost()["lut"].item()
            True
        """
        quantizers = width_quantizers(model)
        kept = {n: q.log2_lsb.detach().clone() for n, q in quantizers.items()}
        try:
            with torch.no_grad():
                for name, q in quantizers.items():
                    _narrowest(q, _values(model, name))
            return self._measure(model)
        finally:
            for name, q in quantizers.items():
                q.log2_lsb.data.copy_(kept[name])

    def hold(self, model: nn.Module, *, restored: bool = False) -> None:
        """The settle phase: every learned format is held (its step and range no longer
        train) and the penalty is off; the weights fine-tune on the formats that fit. A
        constant's range follows its values, so it is held too
        (:meth:`WidthQuantizer.hold_format`): weights (or a BatchNorm scale) that grow in
        fine-tuning saturate at the measured format instead of widening it past the budget,
        which the closing guarantee step would then have to win back at any accuracy cost.
        ``restored``: the model comes from a checkpoint taken in the settle phase; the
        ranges, signs and zeros it carries are the held ones and stay as they are."""
        quantizers = width_quantizers(model)
        self._held = [p for q in quantizers.values()
                      for p in (q.log2_lsb, q.log2_range) if p is not None and p.requires_grad]
        for p in self._held:
            p.requires_grad_(False)
        for name, q in quantizers.items():
            if q.role == "activation":
                q.hold_format()
            elif (values := _values(model, name)) is not None:
                q.hold_format(values.detach(), keep=restored)
        self.held = True

    def release(self, model: nn.Module) -> None:
        """The formats :meth:`hold` held learn again: a later ``train`` call may move them
        (this regularizer, once released, adds its penalty again). The constants' held ranges
        stay (the model keeps the formats it was measured and evaluated with; a later
        :meth:`hold` narrows them further, :meth:`WidthQuantizer.release_format` lifts one);
        the activations' steps are kept alive in training again."""
        for p in self._held:
            p.requires_grad_(True)
        self._held = []
        for q in width_quantizers(model).values():
            if q.role == "activation":
                q.release_format()
        self.held = False

    def _calibrate(self) -> Measurement:
        """The exact resources now; with ``measure``, the cost calibrated to them."""
        m = self._measure(self.cost.model)
        if self.measure is not None:
            self.cost.calibrate(m)
        return m

    def state(self) -> dict[str, Any]:
        """The controller's state, the step count and the first guarantee's story: what a
        resumed run needs to go on as if uninterrupted (the trainer stores it in its
        checkpoint; the cost's calibration is measured again from the restored model)."""
        return {"controller": self.controller.state(), "steps": self.steps,
                "guarantee": self._guarantee}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Go on from :meth:`state` (a resumed run)."""
        self.controller.load_state(state.get("controller", {}))
        self.steps = int(state.get("steps", 0))
        self._guarantee = state.get("guarantee")
        self._recalibrate = True

    def step_penalty(self) -> torch.Tensor:
        if self.held:
            return torch.zeros(())
        if self.measure is not None and (self.steps == 0 or self._recalibrate or (
                self.calibrate_every and self.steps % self.calibrate_every == 0)):
            self._recalibrate = False
            self._calibrate()
        self.steps += 1
        cost = self.cost()
        self.last = {k: float(v.detach()) for k, v in cost.items()}
        pen = self.controller.penalty(cost)
        left = None if self._settle_step is None else self._settle_step - self.steps
        self.controller.update(self.last, left)
        return pen

    def widths(self) -> dict[str, float]:
        """Mean learned width of the weights of the costed layers and of every learned
        activation format (the input's and the ReLUs' included), by quantizer name."""
        out: dict[str, float] = {}
        with torch.no_grad():
            for name, m, _q, _p, _n in self.cost.plan:
                q = getattr(m, "weight_quantizer", None)
                if isinstance(q, WidthQuantizer) and getattr(m, "weight", None) is not None:
                    out[f"{name}.weight_quantizer"] = float(q.bit_widths(m.weight).float().mean())
            for name, q in width_quantizers(self.cost.model).items():
                if q.role == "activation":
                    out[name] = float(q.bit_widths().float().mean())
        return out

    def epoch_record(self, model: nn.Module) -> dict[str, Any]:
        used = self._calibrate().total
        return {"resources": used, "budget": dict(self.controller.budget),
                "penalty_weights": dict(self.controller.weights),
                "widths": self.widths(), "fits_budget": self.controller.fits(used)}

    def _measure(self, model: nn.Module) -> Measurement:
        """The exact resources: ``measure`` when given (the model's train/eval mode kept),
        else the cost itself."""
        if self.measure is not None:
            was = model.training
            try:
                return Measurement.of(self.measure(model))
            finally:
                model.train(was)
        with torch.no_grad():
            return Measurement.of({k: float(v) for k, v in self.cost().items()})

    def finish(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
               loss: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor] | None = None,
               max_steps: int = 256, trials: int = 4) -> dict[str, Any]:
        """The guarantee that the trained model fits: while the exact measurement (``measure``,
        else the cost) exceeds the budget, coarsen by one bit (step x 2, range kept) the
        learned format that saves the most over-budget resource per unit of loss on ``(x,
        y)`` (``loss(outputs, x, y)``, the run's training loss; cross-entropy if None).
        The ``trials`` formats the cost's gradient ranks first are each tried and measured:
        the saving is the measured one (a multiplier leaving a DSP raises the LUTs, which a
        gradient does not see), the loss from the same trial. Once every format is at its
        floor, per-channel weights lose whole channels instead (:meth:`_prune_to_fit`).
        Deterministic. Returns ``{"budget_guarantee": {...}}`` for the last epoch's record:
        the resources before and after, the formats coarsened (in order), the channels
        pruned and the loss before and after; raises RuntimeError if neither move is left.

        Example:
            >>> from qfx.nn import QConfig, QInput, QLinear, config
            >>> from qfx.fixed.quantizer import calibration
            >>> with config(QConfig(learn_widths=True)):
            ...     net = nn.Sequential(QInput(8), QLinear(16, 4))
            >>> x = torch.randn(64, 16)
            >>> with calibration(net):
            ...     _ = net(x)
            >>> reg = BudgetRegularizer(net, x, {"dsp": 16.0})
            >>> out = reg.finish(net, x, torch.zeros(64, dtype=torch.long))["budget_guarantee"]
            >>> out["fits"], out["after"]["dsp"] <= 16.0 < out["before"]["dsp"]
            (True, True)
        """
        was = model.training
        model.eval()
        quantizers = width_quantizers(model)
        measure_loss = _loss_meter(model, x, y, loss)
        used = before = self._calibrate().total
        loss0 = start_loss = measure_loss()
        pruned: list[str] = []
        if self.prune_channels and not self.held and self._guarantee is None:
            pruned = self._prune(model, quantizers, measure_loss, used, loss0)
            if pruned:
                used, loss0 = self._calibrate().total, measure_loss()
        steps: list[str] = []
        budget = self.controller.budget
        with self._bar("budget guarantee", "step") as bar:
            while not self.controller.fits(used):
                bar.update(1)
                bar.set_postfix_str(_usage_text(used, budget))
                if len(steps) >= max_steps:
                    raise RuntimeError(f"budget not reached after coarsening {max_steps} formats: "
                                       f"{_usage_text(used, budget)}")
                over = [k for k in budget if used.get(k, 0.0) > budget[k]]
                best, best_loss = self._best_coarsening(model, quantizers, measure_loss, used,
                                                        loss0, over, trials)
                if best is None:  # every format at its floor: only a channel can go
                    channel = self._prune_to_fit(model, quantizers, measure_loss, used, loss0,
                                                 over)
                    if channel is None:
                        raise RuntimeError(f"budget not reached and no learned format can shrink "
                                           f"further nor a channel be pruned: "
                                           f"{_usage_text(used, budget)}")
                    pruned.append(channel)
                    loss0 = measure_loss()
                    used = self._calibrate().total
                    continue
                _shift(quantizers[best], 1.0)
                steps.append(best)
                loss0 = best_loss  # the state its trial measured: no second forward pass
                used = self._calibrate().total  # and the gradient that ranks the next step
        model.train(was)
        done = {"fits": True, "before": before, "after": used, "coarsened": steps,
                "pruned": pruned, "loss_before": start_loss, "loss_after": loss0}
        if self._guarantee is not None:  # a settle phase began with one: the whole story
            first = self._guarantee
            done.update(before=first["before"], loss_before=first["loss_before"],
                        coarsened=first["coarsened"] + steps, pruned=first["pruned"] + pruned)
        self._guarantee = done
        return {"budget_guarantee": done}

    def _best_coarsening(self, model: nn.Module, quantizers: Mapping[str, WidthQuantizer],
                         measure_loss: Callable[[], float], used: Mapping[str, float],
                         loss: float, over: list[str], trials: int
                         ) -> tuple[str | None, float]:
        """The guarantee's next one-bit step (see :meth:`finish`) and the loss after it; None
        if no format can shrink."""
        saving = self._savings(quantizers, over)
        ranked = sorted((n for n in quantizers if saving.get(n, 0.0) > 0 and
                         _can_shrink(quantizers[n], _values(model, n))),
                        key=lambda n: -saving[n])
        best, best_score = None, 0.0
        trial_loss: dict[str, float] = {}
        for name in ranked[:max(trials, 1)]:
            q = quantizers[name]
            trial, trial_loss[name] = self._trial(model, q, lambda q=q: _shift(q, 1.0),
                                                  measure_loss)
            got, score = self._saving_per_loss(used, trial, over, trial_loss[name] - loss)
            if got > 0 and score > best_score:
                best, best_score = name, score
        if best is None and ranked:  # no single step saves: the gradient's choice goes on
            best = ranked[0]
        return best, (math.nan if best is None else trial_loss[best])

    def prune(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
              loss: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor] | None = None
              ) -> list[str]:
        """Prune the channels whose removal lowers the penalised objective (see
        :meth:`_prune`; ``x, y, loss`` as for :meth:`finish`). Returns them."""
        was = model.training
        model.eval()
        measure_loss = _loss_meter(model, x, y, loss)
        try:
            used = self._measure(model).total
            return self._prune(model, width_quantizers(model), measure_loss, used,
                               measure_loss())
        finally:
            model.train(was)

    def _prune(self, model: nn.Module, quantizers: Mapping[str, WidthQuantizer],
               measure_loss: Callable[[], float], used: Mapping[str, float], loss: float
               ) -> list[str]:
        """Channel pruning: the move the width gradient cannot make. A channel's last bit
        removes its whole row at once, the lanes and registers of its activation and the
        consumer's inputs that read it; no one-bit step shows that saving. Each output
        channel of a per-channel weight (the output layer's excepted) is pruned where that
        lowers the penalised objective ``loss + sum_r lam_r * used_r / budget_r`` (``lam``:
        the controller's weights now), the trade the penalty makes for widths. Every channel
        is tried and measured (``measure``: the saving in the design; the loss on the finish
        samples); the best are taken in order, each measured again once an earlier one is
        taken. A trial freezes and estimates the whole model, so a model with more than
        :data:`_PRUNE_TRIALS` candidate channels tries only that many: those whose L1 norm is
        smallest relative to their layer's mean (a ResNet-8 tried every one of its channels
        for tens of minutes). Returns the pruned channels as ``"<quantizer>[<channel>]"``."""
        c = self.controller

        def objective(loss: float, used: Mapping[str, float]) -> float:
            return loss + sum(c.weights[k] * used.get(k, 0.0) / c.budget[k] for k in c.budget)

        def live(name: str) -> list[int]:
            return _live_granules(quantizers[name], _values(model, name))

        def trial(name: str, g: int) -> float:
            q = quantizers[name]
            trial_used, trial_loss = self._trial(model, q, lambda: q.prune(g), measure_loss)
            return objective(trial_loss, trial_used) - j0

        j0 = objective(loss, used)
        candidates = self._prune_candidates(model, quantizers)
        scored = sorted((trial(n, g), n, g)
                        for n, g in self._bar("pruning trials", "channel", candidates))
        taken: list[str] = []
        for delta, name, g in scored:
            if delta >= 0:
                break
            if len(live(name)) < 2:  # a layer keeps a channel
                continue
            if taken:  # the channels taken before change this one's saving and loss
                delta = trial(name, g)
                if delta >= 0:
                    continue
            quantizers[name].prune(g)
            j0 += delta
            taken.append(f"{name}[{g}]")
        return taken

    def _bar(self, desc: str, unit: str, items: list | None = None) -> Any:
        """A progress bar (over ``items``, or updated by hand) shown when the trainer shows
        its own: a model with many channels spends minutes in these trials."""
        return tqdm(items, desc=desc, unit=unit, leave=False, file=sys.stderr,
                    disable=None if self.progress else True)

    def _prune_candidates(self, model: nn.Module, quantizers: Mapping[str, WidthQuantizer]
                          ) -> list[tuple[str, int]]:
        """(quantizer, channel) of every live output channel of a per-channel weight (the
        output layer's excepted; a layer keeps one), at most :data:`_PRUNE_TRIALS` of them:
        those whose L1 norm is smallest relative to their layer's mean first."""
        out_layer = [n for n, m, *_ in self.cost.plan if isinstance(m, (QLinear, QConv2d))][-1:]
        names = [n for n, q in quantizers.items()
                 if q.role == "constant" and q.granularity == "channel"
                 and n.endswith(".weight_quantizer") and n.rpartition(".")[0] not in out_layer]
        channels = {n: _live_granules(quantizers[n], _values(model, n)) for n in names}
        candidates = [(n, g) for n, gs in channels.items() if len(gs) > 1 for g in gs]
        if len(candidates) > _PRUNE_TRIALS:  # the quietest channels of each layer first
            norms = {n: _relative_norms(quantizers[n], _values(model, n)) for n in channels}
            candidates = sorted(candidates, key=lambda ng: float(norms[ng[0]][ng[1]]))
            candidates = candidates[:_PRUNE_TRIALS]
        return candidates

    def _prune_to_fit(self, model: nn.Module, quantizers: Mapping[str, WidthQuantizer],
                      measure_loss: Callable[[], float], used: Mapping[str, float],
                      loss: float, over: list[str]) -> str | None:
        """The guarantee's last move, once every format is at its floor: prune the channel
        that saves the most over-budget resource per unit of loss (each candidate of
        :meth:`_prune_candidates` tried and measured). Returns it (None if none saves)."""
        best, best_score = None, 0.0
        candidates = self._prune_candidates(model, quantizers)
        for name, g in self._bar("pruning to fit", "channel", candidates):
            q = quantizers[name]
            trial, trial_loss = self._trial(model, q, lambda q=q, g=g: q.prune(g), measure_loss)
            got, score = self._saving_per_loss(used, trial, over, trial_loss - loss)
            if got > 0 and score > best_score:
                best, best_score = (name, g), score
        if best is None:
            return None
        quantizers[best[0]].prune(best[1])
        return f"{best[0]}[{best[1]}]"

    def _trial(self, model: nn.Module, q: WidthQuantizer, change: Callable[[], None],
               measure_loss: Callable[[], float]) -> tuple[dict[str, float], float]:
        """The resources and the loss with ``change`` made to ``q``'s steps, which are then
        restored exactly (the whole tensor: a forward pass may keep another granule alive,
        and x + 1 - 1 need not be x in float32)."""
        kept = q.log2_lsb.detach().clone()
        change()
        try:
            return self._measure(model).total, measure_loss()
        finally:
            q.log2_lsb.data.copy_(kept)

    def _saving_per_loss(self, used: Mapping[str, float], trial: Mapping[str, float],
                         over: list[str], dloss: float) -> tuple[float, float]:
        """A trial's saving of the over-budget resources (each over its budget) and that
        saving per unit of added loss (a loss that does not rise counts as 1e-4)."""
        budget = self.controller.budget
        got = sum((used[k] - trial.get(k, 0.0)) / budget[k] for k in over)
        return got, got / max(dloss, 1e-4)

    def _savings(self, quantizers: Mapping[str, WidthQuantizer], over: list[str]
                 ) -> dict[str, float]:
        """Per quantizer: the over-budget resources (normalised by their budgets) saved by
        one bit less in each granule, from the cost's gradient (its step: +1 bit of step is
        -1 bit of width)."""
        params = [q.log2_lsb for q in quantizers.values()]
        # the settle phase holds the formats (no gradient), yet its fine-tuned weights may
        # widen a constant's range past the budget: the ranking still needs the gradient of
        # what hold() held (a format frozen by the caller stays out of the ranking)
        holding = {id(p) for p in self._held}
        held = [p for p in params if not p.requires_grad and id(p) in holding]
        for p in held:
            p.requires_grad_(True)
        try:
            cost = self.cost()
            c = self.controller
            total = sum((cost[k] / c.budget[k] for k in over), torch.zeros(()))
            if not total.requires_grad:
                return {}
            grads = torch.autograd.grad(total, params, allow_unused=True)
        finally:
            for p in held:
                p.requires_grad_(False)
        return {name: 0.0 if g is None else float(-g.sum())
                for name, g in zip(quantizers, grads, strict=True)}


def _loss_meter(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                loss: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor] | None
                ) -> Callable[[], float]:
    """The loss of ``model`` on ``(x, y)`` now, as a number (``loss(outputs, x, y)``, the
    run's training loss; cross-entropy if None)."""
    import torch.nn.functional as F

    loss_fn = loss or (lambda out, _x, target: F.cross_entropy(out, target))

    def measure_loss() -> float:
        with torch.no_grad():
            return float(loss_fn(model(x).float(), x, y))

    return measure_loss


def _values(model: nn.Module, name: str) -> torch.Tensor | None:
    """The constant a quantizer named ``<layer>.<attr>_quantizer`` quantizes (None for an
    activation)."""
    layer, _, attr = name.rpartition(".")
    m = model.get_submodule(layer) if layer else model
    if attr == "scale_quantizer" and isinstance(m, _QBatchNorm):
        return m.scale_shift(m.running_mean, m.running_var)[0]
    if attr == "shift_quantizer" and isinstance(m, _QBatchNorm):
        return m.scale_shift(m.running_mean, m.running_var)[1]
    return getattr(m, attr.removesuffix("_quantizer"), None)


def _live_granules(q: WidthQuantizer, values: torch.Tensor) -> list[int]:
    """The granules (flat indices) of a constant whose width is not 0."""
    alive = q._constant_bits(values.detach())[0] > 0
    return torch.nonzero(alive.reshape(-1)).reshape(-1).tolist()


def _relative_norms(q: WidthQuantizer, values: torch.Tensor) -> torch.Tensor:
    """Each channel's L1 norm over the layer's mean channel norm (the pruning order)."""
    w = values.detach().movedim(q.channel_dim, 0)
    norms = w.abs().reshape(w.shape[0], -1).sum(1)
    return norms / norms.mean().clamp_min(1e-12)


def _narrowest(q: WidthQuantizer, values: torch.Tensor | None) -> None:
    """Set ``q`` to its narrowest live format (see :meth:`BudgetRegularizer.least`)."""
    if q.role == "activation":
        q.log2_lsb.data.copy_(torch.round(q.log2_range.detach()) - 1.0)
        return
    if values is None:
        return
    top = q._granule_reduce(values.detach().double().abs(), torch.amax).reshape(-1)
    lsb = q.log2_lsb.data.view(-1)
    i = int(torch.argmax(top))
    if top[i] <= 0:
        return
    if q.granularity != "tensor":
        lsb.fill_(PRUNED_LOG2_LSB)
    lsb[i] = torch.log2(top[i]).round().to(lsb.dtype)  # the largest value: one step


def _can_shrink(q: WidthQuantizer, values: torch.Tensor | None) -> bool:
    """One bit less still leaves a live format (activations keep at least one magnitude bit;
    a constant is not pruned whole)."""
    if q.role == "activation":
        return bool((q._activation_bits()[0] > 1).all())
    if values is None:
        return False
    with torch.no_grad():
        return bool((q._constant_bits(values.detach())[0] > 1).any())


def _shift(q: WidthQuantizer, bits: float) -> None:
    """Coarsen (``bits > 0``) or refine every granule's step; an activation keeps its range."""
    with torch.no_grad():
        q.log2_lsb.add_(bits)


def _usage_text(used: Mapping[str, float], budget: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {used.get(k, 0.0):,.0f} of {v:,.0f}" for k, v in budget.items())
