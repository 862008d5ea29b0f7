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
* every quantised activation: its bits in registers (FF).

It also reports HGQ's EBOPs (sum over the multiplications of the product of the operand widths;
a convolution's kernel counted once, as HGQ2 counts it for a layer reused over the pixels).

:class:`BudgetController` holds one penalty weight per budgeted resource and updates it after
every step multiplicatively, ``lam *= (used / (target * budget)) ** rate``: it grows while the
model is over ``target`` of the budget and decays as fast once it is under (the log of the ratio
is symmetric: an overshoot far below the budget releases the widths quickly), so the widths
settle at the budget whatever they start from, with no hand-tuned penalty constant.
``measure`` (e.g. the flow's exact export estimate of the frozen model) recalibrates the cost to
the true estimate once per epoch.

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
    ['dsp', 'ebops', 'ff', 'lut']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from qfx.fixed.hwcost import DSP48E2_PORTS, adder_luts, ebops, multiplier_cost
from qfx.fixed.learned_width import WidthQuantizer
from qfx.nn.base import QLayer
from qfx.nn.linear import QConv2d, QLinear
from qfx.nn.norm import _QBatchNorm

__all__ = ["ResourceCost", "BudgetController", "RESOURCES", "BudgetRegularizer"]

#: Resources a budget may name.
RESOURCES = ("lut", "dsp", "ff", "ebops")
_MAX_UNROLL = 4096


def _signed(bits: torch.Tensor, signed: bool) -> torch.Tensor:
    return bits if signed else bits + 1.0


class ResourceCost(nn.Module):
    """Differentiable LUT / DSP / FF / EBOPs of a learned-width qfx model (see the module doc).

    Built once from an example input (one forward pass records every layer's input quantizer
    and shapes); calling it returns tensors that backpropagate into the quantizers' widths.

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
        self.plan: list[tuple[str, QLayer, WidthQuantizer | None, int, int]] = []
        self.acts: list[tuple[WidthQuantizer, int]] = []
        last: list[WidthQuantizer | None] = [None]
        hooks = []

        def hook(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            name = names[m]
            if isinstance(m, (QLinear, QConv2d, _QBatchNorm)):
                pixels = int(math.prod(out.shape[2:])) if out.dim() > 2 else 1
                self.plan.append((name, m, last[0], pixels, int(out[0].numel())))
            q = getattr(m, "output_quantizer", None)
            if isinstance(q, WidthQuantizer):
                last[0] = q
                self.acts.append((q, int(out[0].numel())))
            elif isinstance(m, (QLinear, QConv2d)):  # hands on its exact accumulator: the
                last[0] = None  # next layer's input width is not learned (not costed)

        names = {m: n for n, m in model.named_modules()}
        for m in model.modules():
            if isinstance(m, QLayer):
                hooks.append(m.register_forward_hook(hook))
        was = model.training
        try:
            model.eval()
            with torch.no_grad():
                model(example[:1])
        finally:
            for h in hooks:
                h.remove()
            model.train(was)

    def forward(self) -> dict[str, torch.Tensor]:
        total = {k: torch.zeros(()) for k in RESOURCES}
        for _name, m, q_in, pixels, n_out in self.plan:
            if q_in is None:
                continue
            a = q_in.bit_widths()
            sa = _signed(a, q_in.signed)
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
                total["dsp"] = total["dsp"] + lanes * dsp
                total["lut"] = total["lut"] + lanes * (lut + adder_luts(acc))
                total["ff"] = total["ff"] + lanes * acc
                continue
            if not isinstance(m.weight_quantizer, WidthQuantizer):
                continue
            w = m.weight_quantizer.bit_widths(m.weight)
            if w.dim() == 1:
                w = w.view(-1, *([1] * (m.weight.dim() - 1)))
            w = w.expand_as(m.weight)
            k = int(m.weight[0].numel())
            acc = a + w.max() + math.log2(max(k, 1))
            if isinstance(m, QLinear):
                dsp, lut = multiplier_cost(a, w, sa, w, DSP48E2_PORTS)
                products = (w.detach() > 0).sum()
                total["dsp"] = total["dsp"] + dsp.sum()
                total["lut"] = total["lut"] + lut.sum() + products * adder_luts(acc)
                total["ff"] = total["ff"] + products * acc
                total["ebops"] = total["ebops"] + ebops(a, w)
            else:
                mults = min(k * pixels, _MAX_UNROLL)
                wmax = w.max()
                dsp, lut = multiplier_cost(a, wmax, sa, wmax, DSP48E2_PORTS)
                total["dsp"] = total["dsp"] + mults * dsp
                total["lut"] = total["lut"] + mults * (lut + adder_luts(acc))
                total["ff"] = total["ff"] + mults * acc
                total["ebops"] = total["ebops"] + ebops(a, w)
        for q, n in self.acts:
            total["ff"] = total["ff"] + n * q.bit_widths()
        return total


class BudgetController:
    """Penalty weights that bring a model's resources to ``budget`` (absolute numbers per
    resource of :data:`RESOURCES`); see the module docstring.

    A PI controller on the log of each weight: with ``e = log(used / (target * budget))``
    (clipped to +-2), every step adds ``rate * e`` to an integral term and the weight is
    ``exp(integral + gain * e)``: the proportional term answers at once to a model over (or
    under) its target, the integral one removes the remaining offset; both fall as soon as the
    model is under target, so the widths are released again (no wind-up: the integral is held
    between the weights 1e-6 and 1e4).

    ``penalty(cost)`` is the term to add to the loss (each resource normalised by its budget);
    ``update(cost)`` adapts the weights after a step; ``measure`` (optional: model -> resource
    numbers, e.g. the export estimate) rescales the cost to it once per epoch (``epoch_end``).

    Example:
        >>> c = BudgetController({"lut": 1000.0})
        >>> c.update({"lut": torch.tensor(2000.0)}); c.weights["lut"] > c.initial
        True
    """

    def __init__(self, budget: Mapping[str, float], *, target: float = 0.9, rate: float = 0.05,
                 gain: float = 1.0, initial: float = 1e-3,
                 measure: Callable[[nn.Module], Mapping[str, float]] | None = None) -> None:
        unknown = sorted(set(budget) - set(RESOURCES))
        if unknown:
            raise ValueError(f"budget: unknown resource {unknown[0]!r}; allowed: "
                             f"{', '.join(RESOURCES)}")
        for k, v in budget.items():
            if not (isinstance(v, (int, float)) and v > 0):
                raise ValueError(f"budget.{k} must be a positive number, got {v!r}")
        self.budget = {k: float(v) for k, v in budget.items()}
        self.target, self.rate, self.initial = float(target), float(rate), float(initial)
        self.gain = float(gain)
        self.weights = {k: self.initial for k in self.budget}
        self.integral = {k: math.log(self.initial) for k in self.budget}
        self.scale = {k: 1.0 for k in self.budget}  # measured / differentiable, per epoch
        self.measure = measure

    def penalty(self, cost: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """sum_r lam_r * scale_r * cost_r / budget_r."""
        return sum((self.weights[k] * self.scale[k] * cost[k] / self.budget[k]
                    for k in self.budget), torch.zeros(()))

    def used(self, cost: Mapping[str, Any]) -> dict[str, float]:
        """Estimated resources: the cost rescaled to the measurement."""
        return {k: float(cost[k]) * self.scale[k] for k in self.budget}

    def update(self, cost: Mapping[str, Any]) -> None:
        lo, hi = math.log(1e-6), math.log(1e4)
        for k, used in self.used(cost).items():
            err = math.log(max(used, 1e-3 * self.budget[k]) / (self.target * self.budget[k]))
            err = min(max(err, -2.0), 2.0)
            self.integral[k] = min(max(self.integral[k] + self.rate * err, lo), hi)
            self.weights[k] = math.exp(min(max(self.integral[k] + self.gain * err, lo), hi))

    def epoch_end(self, model: nn.Module, cost: Mapping[str, Any]) -> dict[str, float]:
        """Recalibrate to ``measure`` (if any); returns the resources to report."""
        if self.measure is None:
            return self.used(cost)
        measured = {k: float(v) for k, v in self.measure(model).items()}
        for k in self.budget:
            c = float(cost[k])
            if k in measured and c > 0:
                self.scale[k] = measured[k] / c
        return measured

    def fits(self, used: Mapping[str, float]) -> bool:
        return all(used.get(k, 0.0) <= v for k, v in self.budget.items())


class BudgetRegularizer:
    """The trainer's regularizer (``train(..., regularizer=...)``) that trains a learned-width
    model to ``budget``: each step adds the controlled penalty of :class:`ResourceCost` and
    updates the controller; each epoch's record gets ``resources`` (the estimate),
    ``penalty_weights`` and ``widths`` (the mean learned width of every quantizer).

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
                 **controller: Any) -> None:
        self.cost = ResourceCost(model, example)
        self.controller = BudgetController(budget, **controller)
        self.last: dict[str, float] = {}

    def step_penalty(self) -> torch.Tensor:
        cost = self.cost()
        self.last = {k: float(v.detach()) for k, v in cost.items()}
        pen = self.controller.penalty(cost)
        self.controller.update(self.last)
        return pen

    def widths(self) -> dict[str, float]:
        """Mean learned width of every quantizer of the costed layers."""
        out: dict[str, float] = {}
        with torch.no_grad():
            for name, m, _q, _p, _n in self.cost.plan:
                for attr, value in (("weight_quantizer", getattr(m, "weight", None)),
                                    ("output_quantizer", None)):
                    q = getattr(m, attr, None)
                    if isinstance(q, WidthQuantizer) and (value is not None or
                                                          q.role == "activation"):
                        out[f"{name}.{attr}"] = float(q.bit_widths(value).float().mean())
        return out

    def epoch_record(self, model: nn.Module) -> dict[str, Any]:
        with torch.no_grad():
            cost = {k: float(v) for k, v in self.cost().items()}
        used = self.controller.epoch_end(model, cost)
        return {"resources": used, "budget": dict(self.controller.budget),
                "penalty_weights": dict(self.controller.weights),
                "widths": self.widths(), "fits_budget": self.controller.fits(used)}

    def _measure(self, model: nn.Module) -> dict[str, float]:
        """The exact resources: ``measure`` when given, else the cost itself."""
        c = self.controller
        if c.measure is not None:
            return {k: float(v) for k, v in c.measure(model).items()}
        with torch.no_grad():
            return {k: float(v) for k, v in self.cost().items()}

    def finish(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
               loss: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor] | None = None,
               max_steps: int = 256) -> dict[str, Any]:
        """The guarantee that the trained model fits: while the exact measurement (``measure``,
        else the cost) exceeds the budget, coarsen by one bit (step x 2, range kept) the
        learned format that saves the most over-budget resource per unit of loss on ``(x,
        y)`` (``loss(outputs, x, y)``, the run's training loss; cross-entropy if None): the
        saving read from the cost's gradient (scaled to the measurement), the loss
        from a trial. Deterministic. Returns ``{"budget_guarantee": {...}}`` for the last
        epoch's record: the resources before and after, the formats coarsened (in order) and
        the loss before and after; raises RuntimeError if no format can shrink any further.

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
        import torch.nn.functional as F

        from qfx.fixed.learned_width import width_quantizers

        was = model.training
        model.eval()
        quantizers = width_quantizers(model)

        loss_fn = loss or (lambda out, _x, target: F.cross_entropy(out, target))

        def measure_loss() -> float:
            with torch.no_grad():
                return float(loss_fn(model(x).float(), x, y))

        used = before = self._measure(model)
        loss0 = start_loss = measure_loss()
        steps: list[str] = []
        budget = self.controller.budget
        while not self.controller.fits(used):
            if len(steps) >= max_steps:
                raise RuntimeError(f"budget not reached after coarsening {max_steps} formats: "
                                   f"{_usage_text(used, budget)}")
            over = [k for k in budget if used.get(k, 0.0) > budget[k]]
            saving = self._savings(quantizers, over)
            best, best_score = None, 0.0
            for name, q in quantizers.items():
                if saving.get(name, 0.0) <= 0 or not _can_shrink(q, _values(model, name)):
                    continue
                _shift(q, 1.0)
                score = saving[name] / max(measure_loss() - loss0, 1e-4)
                _shift(q, -1.0)
                if score > best_score:
                    best, best_score = name, score
            if best is None:
                raise RuntimeError(f"budget not reached and no learned format can shrink "
                                   f"further: {_usage_text(used, budget)}")
            _shift(quantizers[best], 1.0)
            steps.append(best)
            loss0 = measure_loss()
            used = self._measure(model)
        model.train(was)
        return {"budget_guarantee": {
            "fits": True, "before": before, "after": used, "coarsened": steps,
            "loss_before": start_loss, "loss_after": loss0}}

    def _savings(self, quantizers: Mapping[str, WidthQuantizer], over: list[str]
                 ) -> dict[str, float]:
        """Per quantizer: the over-budget resources (normalised by their budgets) saved by
        one bit less in each granule, from the cost's gradient (its step: +1 bit of step is
        -1 bit of width)."""
        params = [q.log2_lsb for q in quantizers.values()]
        cost = self.cost()
        c = self.controller
        total = sum((c.scale[k] * cost[k] / c.budget[k] for k in over), torch.zeros(()))
        if not total.requires_grad:
            return {}
        grads = torch.autograd.grad(total, params, allow_unused=True)
        return {name: 0.0 if g is None else float(-g.sum())
                for name, g in zip(quantizers, grads, strict=True)}


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
