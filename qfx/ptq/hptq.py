"""Hardware-friendly post-training quantisation (HPTQ, Habi et al. 2021) for qfx.

``ptq(float_model, calib, config)`` converts a plain torch.nn model into qfx layers
(:func:`qfx.nn.quantize_model`) and sets every binary point without training:

1. BatchNorm folding (``fold_batchnorm``): Conv2d+BatchNorm2d pairs become one conv; a
   BatchNorm that cannot be folded stays a fixed-point BatchNorm (scale and shift formats
   chosen like weights).
2. Per-channel power-of-two weight thresholds (``per_channel_weights``), chosen by
   ``weight_criterion`` (MSE by default).
3. Statistics of every activation over the calibration set (float model; a tqdm progress bar),
   and activation thresholds chosen by ``act_criterion`` (MSE, MAE, no-clipping or KL).
4. Shift-negative correction (``shift_negative_correction``): a signed activation that is
   almost non-negative (its minimum above ``-snc_ratio * max``) produced by a Linear/Conv and
   consumed only by a Linear or an unpadded Conv is shifted up by ``c`` (the producer's bias
   += c) so that it fits an unsigned format (one more bit of resolution); the consumer's bias
   -= ``W @ c`` removes the shift exactly in float. A signed activation that is never
   negative on the calibration data simply gets an unsigned format.
5. Bias correction (``bias_correction``): the mean output error that weight quantisation
   causes, ``(W_q - W) E[x]``, is removed from each bias.

The result is a qfx model in eval mode (computing exactly what its frozen graph computes) and
the frozen :class:`qfx.ir.Graph`, plus a :class:`PTQReport`: per layer the chosen format and
the quantisation error, the calibration data's kind (real / generated / noise) and, when
labelled data is given, float and fixed-point accuracy.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from qfx.fixed.quantizer import FixedQuantizer
from qfx.nn.config import QConfig
from qfx.nn.convert import quantize_model
from qfx.nn.linear import QConv2d, QLinear
from qfx.nn.norm import QBatchNorm1d, QBatchNorm2d
from qfx.ptq.thresholds import CRITERIA, choose_int_bits, quantize_rows, threshold

__all__ = ["PTQConfig", "PTQReport", "PTQResult", "LayerFormat", "ptq", "hptq",
           "CALIB_KINDS"]

CALIB_KINDS = ("real", "generated", "noise")
_SAMPLES_PER_BATCH = 1 << 14
_MAX_SAMPLES = 1 << 18


@dataclass(frozen=True)
class PTQConfig:
    """What HPTQ does; every step can be switched off.

    Defaults follow HPTQ: per-channel power-of-two weights chosen by MSE, activations by MSE,
    BatchNorm folded, bias correction and shift-negative correction on. ``PTQConfig.naive(w, a)``
    is the baseline: per-tensor no-clipping (max) thresholds, nothing else.

    Example:
        >>> PTQConfig(weight_bits=4).qconfig().weight_width
        4
        >>> PTQConfig.naive(8).act_criterion
        'noclip'
    """

    weight_bits: int = 8
    act_bits: int = 8
    input_bits: int | None = None  # None: act_bits
    bias_bits: int | None = None  # None: 2 * max(weight_bits, act_bits)
    per_channel_weights: bool = True
    weight_criterion: str = "mse"
    act_criterion: str = "mse"
    fold_batchnorm: bool = True
    bias_correction: bool = True
    shift_negative_correction: bool = True
    snc_ratio: float = 0.25
    search_bits: int = 8
    rounding: str = "RND"
    overflow: str = "SAT"
    input_signed: bool | None = None  # None: from the calibration data
    progress: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("weight_bits", "act_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 2 <= v <= 32:
                raise ValueError(f"PTQConfig.{name} must be an integer 2..32, got {v!r}")
        for name in ("weight_criterion", "act_criterion"):
            if getattr(self, name) not in CRITERIA:
                raise ValueError(f"PTQConfig.{name}={getattr(self, name)!r}; allowed: "
                                 f"{', '.join(CRITERIA)}")
        if self.weight_criterion == "kl":
            raise ValueError("PTQConfig.weight_criterion='kl' is not supported (KL compares "
                             "distributions of activations); use mse, mae or noclip")
        if not 0 < self.snc_ratio <= 1:
            raise ValueError(f"PTQConfig.snc_ratio must be in (0, 1], got {self.snc_ratio!r}")

    @classmethod
    def naive(cls, weight_bits: int = 8, act_bits: int = 8, **changes: Any) -> PTQConfig:
        """The baseline: per-tensor max (no-clipping) thresholds, BN folded, no corrections."""
        values = dict(weight_bits=weight_bits, act_bits=act_bits, per_channel_weights=False,
                      weight_criterion="noclip", act_criterion="noclip", bias_correction=False,
                      shift_negative_correction=False)
        values.update(changes)
        return cls(**values)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PTQConfig:
        """From a mapping (a YAML file's); ``bits`` sets weight and activation bits."""
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"bits"})
        if unknown:
            raise ValueError(f"unknown PTQ option(s) {', '.join(unknown)}; allowed: bits, "
                             f"{', '.join(sorted(known))}")
        bits = data.pop("bits", None)
        if bits is not None:
            data.setdefault("weight_bits", bits)
            data.setdefault("act_bits", bits)
        return cls(**data)

    def replace(self, **changes: Any) -> PTQConfig:
        return dataclasses.replace(self, **changes)

    def qconfig(self) -> QConfig:
        """The qfx layer formats (widths and modes) this PTQ configuration uses."""
        a, w = self.act_bits, self.weight_bits
        return QConfig(input_width=self.input_bits or a, weight_width=w,
                       bias_width=self.bias_bits or 2 * max(w, a), act_width=a,
                       bn_scale_width=max(w, a), bn_shift_width=2 * max(w, a), add_width=a,
                       weight_rounding=self.rounding, act_rounding=self.rounding,
                       weight_overflow=self.overflow, act_overflow=self.overflow,
                       per_channel_weights=self.per_channel_weights)

    def describe(self) -> str:
        steps = [f"W{self.weight_bits}A{self.act_bits}",
                 f"weights {'per-channel' if self.per_channel_weights else 'per-tensor'} "
                 f"{self.weight_criterion}", f"activations {self.act_criterion}",
                 "BN folded" if self.fold_batchnorm else "fixed-point BN",
                 "bias correction" if self.bias_correction else "no bias correction",
                 "shift-negative correction" if self.shift_negative_correction else "no SNC"]
        return ", ".join(steps)


@dataclass
class LayerFormat:
    """One quantised tensor: where it is, its format, its threshold and its error."""

    name: str
    kind: str  # weight | bias | act | bn_scale | bn_shift
    formats: str
    criterion: str
    max_abs: float
    thresholds: str
    error: float  # the criterion's error on the tensor itself (MSE for weights)
    sqnr_db: float | None = None  # activations: end-to-end SQNR of the quantised model here
    note: str = ""


@dataclass
class PTQReport:
    """Per-layer formats and errors, the calibration data's kind, and accuracies if measured."""

    config: PTQConfig
    calib_kind: str
    calib_samples: int
    layers: list[LayerFormat] = field(default_factory=list)
    float_accuracy: float | None = None
    accuracy: float | None = None
    eval_samples: int = 0
    corrections: list[str] = field(default_factory=list)

    def calib_label(self) -> str:
        return {"real": "real data", "generated": "GENERATED data (DGH, no real images)",
                "noise": "RANDOM NOISE (no real images)"}[self.calib_kind]

    def to_markdown(self) -> str:
        lines = ["# qfx PTQ report", "",
                 f"- calibration: {self.calib_samples} samples of {self.calib_label()}",
                 f"- configuration: {self.config.describe()}"]
        if self.accuracy is not None:
            lines.append(f"- accuracy on {self.eval_samples} labelled samples: float "
                         f"{self.float_accuracy:.4f}, fixed point {self.accuracy:.4f} "
                         f"(calibrated on {self.calib_kind} data)")
        for c in self.corrections:
            lines.append(f"- {c}")
        lines += ["", "| tensor | kind | format | criterion | max abs | threshold | error | "
                  "SQNR dB |", "| --- | --- | --- | --- | ---: | --- | ---: | ---: |"]
        for r in self.layers:
            sq = "" if r.sqnr_db is None else f"{r.sqnr_db:.1f}"
            lines.append(f"| {r.name} | {r.kind} | {r.formats} | {r.criterion} | "
                         f"{r.max_abs:.4g} | {r.thresholds} | {r.error:.3g} | {sq} |")
        return "\n".join(lines) + "\n"

    __str__ = to_markdown


@dataclass
class PTQResult:
    graph: Any  # qfx.ir.Graph
    model: fx.GraphModule
    report: PTQReport


# ---------------------------------------------------------------------------------- helpers
def _batches(data: Any) -> list[torch.Tensor]:
    if data is None:
        return []
    if isinstance(data, torch.Tensor):
        return [data]
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(
            data, torch.utils.data.IterableDataset):
        data = torch.utils.data.DataLoader(data, batch_size=256)
    out = [b[0] if isinstance(b, (tuple, list)) else b for b in data]
    return [torch.as_tensor(b).float() for b in out]


def _labelled(data: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    if data is None:
        return None
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(
            isinstance(t, torch.Tensor) for t in data):
        return data[0].float(), data[1].long()
    if isinstance(data, torch.utils.data.TensorDataset) and len(data.tensors) >= 2:
        return data.tensors[0].float(), data.tensors[1].long()
    raise ValueError("eval_data must be (x, y) tensors or a TensorDataset of (x, y)")


def _progress(it: Iterable, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False)


def _set_int_bits(q: FixedQuantizer, int_bits: torch.Tensor) -> None:
    p = (int_bits.to(torch.float64) - q.width).to(q.log2_lsb.dtype)
    with torch.no_grad():
        q.log2_lsb.data.copy_(p.reshape(q.log2_lsb.shape))
        q.initialized.fill_(True)


def _fmt(q: FixedQuantizer) -> tuple[str, str]:
    types = q.fixed_types
    thr = sorted({threshold(t.int_bits, t.signed) for t in types})
    if len(types) == 1:
        return types[0].cpp(), f"{thr[0]:g}"
    ints = [t.int_bits for t in types]
    return (f"{'ap_fixed' if q.signed else 'ap_ufixed'}<{q.width}, I={min(ints)}..{max(ints)}> "
            f"x{len(types)} channels", f"{thr[0]:g}..{thr[-1]:g}")


def _set_param_quantizer(q: FixedQuantizer, values: torch.Tensor, criterion: str,
                         search: int) -> tuple[float, float]:
    rows = values.detach().to(torch.float64)
    rows = rows.reshape(rows.shape[0], -1) if q.per_channel else rows.reshape(1, -1)
    ib, err = choose_int_bits(rows, q.width, q.signed, criterion, rounding=q.rounding,
                              overflow=q.overflow, search=search)
    _set_int_bits(q, ib)
    return float(rows.abs().max()) if rows.numel() else 0.0, float(err.mean())


def _act_quantizers(model: nn.Module) -> dict[str, FixedQuantizer]:
    out = {}
    for name, m in model.named_modules():
        q = getattr(m, "output_quantizer", None)
        if isinstance(q, FixedQuantizer):
            out[name] = q
    return out


def _all_quantizers(model: nn.Module) -> list[FixedQuantizer]:
    return [m for m in model.modules() if isinstance(m, FixedQuantizer)]


class _Stats:
    """Subsampled values of every activation and the per-channel input means of every
    weighted layer, gathered by forward hooks while the model runs unquantised."""

    def __init__(self, model: nn.Module, acts: dict[str, FixedQuantizer], seed: int) -> None:
        self.samples: dict[str, list[torch.Tensor]] = {n: [] for n in acts}
        self.count: dict[str, int] = dict.fromkeys(acts, 0)
        self.amin: dict[str, float] = dict.fromkeys(acts, math.inf)
        self.amax: dict[str, float] = dict.fromkeys(acts, -math.inf)
        self.in_sum: dict[str, torch.Tensor] = {}
        self.in_n: dict[str, int] = {}
        self.gen = torch.Generator().manual_seed(seed)
        self.handles = []
        for name, q in acts.items():
            self.handles.append(q.register_forward_pre_hook(self._act_hook(name)))
        for name, m in model.named_modules():
            if isinstance(m, (QLinear, QConv2d)):
                self.handles.append(m.register_forward_pre_hook(self._in_hook(name)))

    def _act_hook(self, name: str):
        def hook(_mod, args):
            x = args[0].detach().reshape(-1).to(torch.float64)
            self.amin[name] = min(self.amin[name], float(x.min()))
            self.amax[name] = max(self.amax[name], float(x.max()))
            if self.count[name] < _MAX_SAMPLES:
                if x.numel() > _SAMPLES_PER_BATCH:
                    x = x[torch.randperm(x.numel(), generator=self.gen)[:_SAMPLES_PER_BATCH]]
                self.samples[name].append(x)
                self.count[name] += x.numel()
        return hook

    def _in_hook(self, name: str):
        def hook(_mod, args):
            x = args[0].detach().to(torch.float64)
            dims = [0] + list(range(2, x.dim()))
            s = x.sum(dims)
            n = x.numel() // x.shape[1]
            self.in_sum[name] = self.in_sum.get(name, 0) + s
            self.in_n[name] = self.in_n.get(name, 0) + n
        return hook

    def values(self, name: str) -> torch.Tensor:
        return torch.cat(self.samples[name]) if self.samples[name] else torch.zeros(1)

    def input_mean(self, name: str) -> torch.Tensor | None:
        return self.in_sum[name] / self.in_n[name] if name in self.in_sum else None

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def _run(model: nn.Module, batches: list[torch.Tensor], progress: bool, desc: str) -> None:
    with torch.no_grad():
        for b in _progress(batches, progress, desc):
            model(b)


def _enable(model: nn.Module, on: bool) -> None:
    for q in _all_quantizers(model):
        q.enabled = on


def _bias_corrections(model: fx.GraphModule, stats: _Stats) -> list[str]:
    done = []
    for name, m in model.named_modules():
        if not isinstance(m, (QLinear, QConv2d)) or m.bias is None:
            continue
        mean = stats.input_mean(name)
        if mean is None:
            continue
        w = m.weight.detach().to(torch.float64)
        dw = m.weight_quantizer.quantize_exact(w) - w
        if isinstance(m, QLinear):
            corr = dw @ mean
        else:
            g = m.groups
            cin_g = w.shape[1]
            mean_g = mean.reshape(g, cin_g)
            dw_g = dw.sum((2, 3)).reshape(g, -1, cin_g)  # [g, cout_g, cin_g]
            corr = torch.einsum("goc,gc->go", dw_g, mean_g).reshape(-1)
        with torch.no_grad():
            m.bias.sub_(corr.to(m.bias.dtype))
        done.append(name)
    return done


def _users(gm: fx.GraphModule, target: str) -> list[fx.Node]:
    for n in gm.graph.nodes:
        if n.op == "call_module" and n.target == target:
            return list(n.users)
    return []


def _make_unsigned(m: nn.Module, q: FixedQuantizer, acts: dict[str, FixedQuantizer],
                   name: str) -> None:
    new = FixedQuantizer(q.width, False, q.rounding, q.overflow,
                         learn_binary_point=isinstance(q.log2_lsb, nn.Parameter))
    new.enabled = q.enabled
    m.output_quantizer = new
    acts[name] = new


def _shift_negative(gm: fx.GraphModule, stats: _Stats, cfg: PTQConfig,
                    acts: dict[str, FixedQuantizer]) -> list[str]:
    """Shift almost non-negative signed activations to unsigned formats (see module doc)."""
    done = []
    modules = dict(gm.named_modules())
    for name, q in list(acts.items()):
        m = modules.get(name)
        lo, hi = stats.amin[name], stats.amax[name]
        if not q.signed or not hi > 0:
            continue
        if lo >= 0:  # never negative on the calibration data: unsigned, no shift needed
            _make_unsigned(m, q, acts, name)
            done.append(f"{name} (unsigned, no shift)")
            continue
        if not isinstance(m, (QLinear, QConv2d)) or m.bias is None \
                or -lo > cfg.snc_ratio * hi:
            continue
        users = _users(gm, name)
        if not users or any(u.op != "call_module" for u in users):
            continue
        cons = [modules[u.target] for u in users]
        if not all(isinstance(c, QLinear) or (isinstance(c, QConv2d) and not any(c.padding))
                   for c in cons) or any(c.bias is None for c in cons):
            continue
        c = -lo  # shift: x + c >= 0 on the calibration data
        with torch.no_grad():
            m.bias.add_(c)
            for u, k in zip(users, cons, strict=True):
                if u.target in stats.in_sum:
                    stats.in_sum[u.target] = stats.in_sum[u.target] + c * stats.in_n[u.target]
                k.bias.sub_((k.weight.detach().to(torch.float64).sum(
                    tuple(range(1, k.weight.dim()))) * c).to(k.bias.dtype))
        _make_unsigned(m, q, acts, name)
        stats.samples[name] = [v + c for v in stats.samples[name]]
        stats.amin[name], stats.amax[name] = lo + c, hi + c
        done.append(f"{name} (+{c:.4g})")
    return done


def _sqnr(model: nn.Module, acts: dict[str, FixedQuantizer], x: torch.Tensor) -> dict[str, float]:
    """End-to-end SQNR (dB) of every activation: quantised model vs. float model."""
    outs: dict[str, list[torch.Tensor]] = {}
    handles = [q.register_forward_hook(
        lambda _m, _a, out, n=n: outs.setdefault(n, []).append(out.detach().double()))
        for n, q in acts.items()]
    try:
        _enable(model, False)
        with torch.no_grad():
            model(x)
        _enable(model, True)
        with torch.no_grad():
            model(x)
    finally:
        _enable(model, True)
        for h in handles:
            h.remove()
    res = {}
    for n, (f, qv) in outs.items():
        if n in acts and f.shape == qv.shape:
            noise = float(((qv - f) ** 2).mean())
            sig = float((f ** 2).mean())
            res[n] = 10 * math.log10(sig / noise) if noise > 0 and sig > 0 else math.inf
    return res


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 512]).argmax(1) for i in range(0, len(x), 512)])
    return float((pred == y).double().mean())


# ---------------------------------------------------------------------------------- entry
def hptq(float_model: nn.Module, calib: Any, config: PTQConfig | dict[str, Any] | None = None,
         *, calib_kind: str = "real", eval_data: Any = None,
         example_input: torch.Tensor | None = None) -> PTQResult:
    """Post-training quantise ``float_model`` (plain torch.nn) with HPTQ; see the module doc.

    ``calib``: a tensor, a Dataset or an iterable of batches (``(x, y)`` pairs are fine);
    ``calib_kind`` labels it ("real", "generated" or "noise") in the report. ``eval_data``:
    labelled ``(x, y)`` to report float and fixed-point accuracy on.
    """
    from qfx.frontends.pytorch import freeze

    cfg = PTQConfig.from_dict(config) if isinstance(config, dict) else (config or PTQConfig())
    if calib_kind not in CALIB_KINDS:
        raise ValueError(f"calib_kind must be one of {', '.join(CALIB_KINDS)}, got "
                         f"{calib_kind!r}")
    batches = _batches(calib)
    if not batches:
        raise ValueError("ptq needs calibration data (a tensor, a Dataset or batches); use "
                         "qfx.generate_calibration_data for data-free PTQ")
    example = example_input if example_input is not None else batches[0][:1]
    signed = cfg.input_signed
    if signed is None:
        signed = any(bool((b < 0).any()) for b in batches)
    src = copy.deepcopy(float_model).eval()
    qm = quantize_model(src, cfg.qconfig(), None, example_input=example,
                        fold_batchnorm=cfg.fold_batchnorm, input_signed=signed)
    qm.eval()
    report = PTQReport(cfg, calib_kind, sum(len(b) for b in batches))
    acts = _act_quantizers(qm)

    # 1. statistics of the float model (every quantizer passes its input through)
    _enable(qm, False)
    stats = _Stats(qm, acts, cfg.seed)
    try:
        _run(qm, batches, cfg.progress, "ptq statistics")
    finally:
        stats.close()

    # 2. shift-negative correction (changes biases: before the weight/bias thresholds)
    if cfg.shift_negative_correction:
        shifted = _shift_negative(qm, stats, cfg, acts)
        if shifted:
            report.corrections.append("shift-negative correction on " + ", ".join(shifted))

    # 3. weight (and BN parameter) thresholds
    for name, m in qm.named_modules():
        if isinstance(m, (QLinear, QConv2d)):
            amax, err = _set_param_quantizer(m.weight_quantizer, m.weight,
                                             cfg.weight_criterion, cfg.search_bits)
            f, t = _fmt(m.weight_quantizer)
            report.layers.append(LayerFormat(name, "weight", f, cfg.weight_criterion, amax, t,
                                             err))
        elif isinstance(m, (QBatchNorm1d, QBatchNorm2d)):
            scale, shift = m.scale_shift(m.running_mean, m.running_var)
            for kind, q, v in (("bn_scale", m.scale_quantizer, scale),
                               ("bn_shift", m.shift_quantizer, shift)):
                amax, err = _set_param_quantizer(q, v, cfg.weight_criterion, cfg.search_bits)
                f, t = _fmt(q)
                report.layers.append(LayerFormat(name, kind, f, cfg.weight_criterion, amax, t,
                                                 err))

    # 4. bias correction, then bias formats (no clipping: a bias is one value per channel)
    if cfg.bias_correction:
        corrected = _bias_corrections(qm, stats)
        if corrected:
            report.corrections.append(f"bias correction on {len(corrected)} layer(s): "
                                      + ", ".join(corrected))
    for name, m in qm.named_modules():
        if isinstance(m, (QLinear, QConv2d)) and m.bias is not None:
            amax, err = _set_param_quantizer(m.bias_quantizer, m.bias, "noclip", 0)
            f, t = _fmt(m.bias_quantizer)
            report.layers.append(LayerFormat(name, "bias", f, "noclip", amax, t, err))

    # 5. activation thresholds
    for name, q in acts.items():
        x = stats.values(name).reshape(1, -1)
        ib, err = choose_int_bits(x, q.width, q.signed, cfg.act_criterion,
                                  rounding=q.rounding, overflow=q.overflow,
                                  search=cfg.search_bits)
        _set_int_bits(q, ib)
        amax = max(abs(stats.amin[name]), abs(stats.amax[name]))
        f, t = _fmt(q)
        clipped = float((quantize_rows(x, ib, q.width, q.signed, q.rounding, q.overflow)
                         .sub(x).abs() > 2.0 ** (int(ib) - q.width)).double().mean())
        report.layers.append(LayerFormat(name or "input", "act", f, cfg.act_criterion, amax,
                                         t, float(err), note=f"{clipped:.2%} clipped"))

    # every remaining quantizer (pooling reciprocals: fixed at construction) set; exact eval
    _enable(qm, True)
    for q in _all_quantizers(qm):
        if not bool(q.initialized):
            raise RuntimeError("internal: a quantizer was left without a format")
    qm.eval()
    sq = _sqnr(qm, acts, torch.cat(batches)[:256])
    for r in report.layers:
        if r.kind == "act":
            r.sqnr_db = sq.get("" if r.name == "input" else r.name)
    labelled = _labelled(eval_data)
    if labelled is not None:
        x, y = labelled
        report.float_accuracy = _accuracy(src, x, y)
        report.accuracy = _accuracy(qm, x, y)
        report.eval_samples = len(y)
    graph = freeze(qm, example)
    return PTQResult(graph, qm, report)


def ptq(float_model: nn.Module, calib: Any, config: PTQConfig | dict[str, Any] | None = None,
        *, return_model: bool = False, calib_kind: str = "real", eval_data: Any = None,
        example_input: torch.Tensor | None = None):
    """HPTQ of a float torch model: the frozen qfx :class:`~qfx.ir.Graph` (and the calibrated
    qfx model with ``return_model=True``). :func:`hptq` also returns the report.

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> graph = ptq(net, torch.randn(64, 4), PTQConfig(progress=False))
        >>> graph.outputs[0] in graph.edges
        True
    """
    res = hptq(float_model, calib, config, calib_kind=calib_kind, eval_data=eval_data,
               example_input=example_input)
    return (res.graph, res.model) if return_model else res.graph
