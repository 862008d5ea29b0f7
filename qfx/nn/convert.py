"""`quantize_model`: convert a plain torch.nn model into its qfx fixed-point twin.

The float model is traced with torch.fx; standard layers are swapped for qfx layers (weights
copied), functional residual adds and ReLUs become QAdd/QReLU modules, an input quantizer is
put on every model input, and (given data) every binary point is calibrated: a PTQ start
that fine-tuning then improves.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Iterable
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from qfx.fixed.quantizer import FixedQuantizer, calibration
from qfx.nn.activation import QHardSigmoid, QHardSwish, QHardTanh, QLeakyReLU, QReLU, pow2_shift
from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config
from qfx.nn.io import QFlatten, QInput
from qfx.nn.linear import QConv1d, QConv2d, QLinear
from qfx.nn.merge import QAdd, QConcat, QMul
from qfx.nn.norm import QBatchNorm1d, QBatchNorm2d
from qfx.nn.pooling import QAvgPool2d, QGlobalAvgPool2d, QGlobalMaxPool2d, QMaxPool2d
from qfx.nn.spatial import QPad, QUpsample
from qfx.nn.table import QSigmoid, QSoftmax, QTanh

__all__ = ["quantize_model"]

_ADD_FUNCS = (operator.add, operator.iadd, torch.add)
_RELU_FUNCS = (torch.relu, F.relu)
_KEEP_FUNCS = (torch.flatten, getattr, operator.getitem)
_KEEP_METHODS = ("size", "view", "reshape", "flatten", "contiguous")


def _copy_params(dst: nn.Module, src: nn.Module, names: Iterable[str]) -> nn.Module:
    with torch.no_grad():
        for name in names:
            s = getattr(src, name, None)
            if s is not None:
                getattr(dst, name).copy_(s)
    return dst


def _feeds_batchnorm(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    users = list(node.users)
    return len(users) == 1 and users[0].op == "call_module" and isinstance(
        modules.get(users[0].target), (nn.BatchNorm1d, nn.BatchNorm2d))


def _rank(node: fx.Node) -> int | None:
    """The rank of a module's input (batch included), when shape propagation recorded it."""
    arg = node.args[0] if node.args else None
    meta = arg.meta.get("tensor_meta") if isinstance(arg, fx.Node) else None
    return None if meta is None else len(meta.shape)


def _convert_module(m: nn.Module, cfg: QConfig, node: fx.Node, path: str,
                    modules: dict[str, nn.Module]) -> nn.Module | None:
    """The qfx twin of a standard module, None to keep it as is; raise if unsupported."""
    quantize_output = cfg.quantize_before_batchnorm or not _feeds_batchnorm(node, modules)
    if isinstance(m, nn.Linear):
        q = QLinear(m.in_features, m.out_features, m.bias is not None,
                    quantize_output=quantize_output, config=cfg)
        return _copy_params(q, m, ("weight", "bias"))
    if isinstance(m, nn.Conv2d):
        padding = _same_padding(m, path) if m.padding == "same" else m.padding
        if m.padding_mode != "zeros" or isinstance(padding, str):
            raise ValueError(f"cannot convert {path!r} (nn.Conv2d): padding must be integers "
                             f"or 'same' with padding_mode='zeros', got {m.padding!r}/"
                             f"{m.padding_mode!r}")
        q = QConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, padding,
                    m.dilation, m.groups, m.bias is not None, quantize_output=quantize_output,
                    config=cfg)
        return _copy_params(q, m, ("weight", "bias"))
    if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
        if not m.affine or not m.track_running_stats:
            raise ValueError(f"cannot convert {path!r} ({type(m).__name__}): needs affine=True "
                             "and track_running_stats=True")
        cls = QBatchNorm2d if isinstance(m, nn.BatchNorm2d) else QBatchNorm1d
        q = cls(m.num_features, m.eps, m.momentum, config=cfg)
        return _copy_params(q, m, ("weight", "bias", "running_mean", "running_var",
                                   "num_batches_tracked"))
    if isinstance(m, nn.ReLU):
        return QReLU(config=cfg)
    if isinstance(m, nn.ReLU6):
        return QHardTanh(0.0, 6.0, config=cfg)
    if isinstance(m, nn.Hardtanh):
        return QHardTanh(m.min_val, m.max_val, config=cfg)
    if isinstance(m, nn.MaxPool2d):
        if m.return_indices:
            raise ValueError(f"cannot convert {path!r} (nn.MaxPool2d with return_indices)")
        return QMaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
    if isinstance(m, nn.AvgPool2d):
        return QAvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                          m.divisor_override, config=cfg)
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return _adaptive_pool(m, cfg, node, path)
    if isinstance(m, nn.Flatten):
        return QFlatten(m.start_dim, m.end_dim)
    if isinstance(m, (nn.Upsample, nn.ZeroPad2d, nn.ConstantPad2d)):
        return _convert_spatial(m, node, path)
    if isinstance(m, (nn.Identity, nn.Dropout)):
        return None
    twin = _convert_window_module(m, cfg, node, path)  # ops-window
    if twin is not None:
        return twin
    # ---- table activations (lookup tables over the input's codes, see qfx.nn.table)
    if isinstance(m, (nn.Sigmoid, nn.Tanh)):
        return (QSigmoid if isinstance(m, nn.Sigmoid) else QTanh)(config=cfg)
    if isinstance(m, nn.Softmax):
        if m.dim not in (1, -1) or (m.dim == -1 and _rank(node) not in (None, 2)):
            raise ValueError(f"cannot convert {path!r} (nn.Softmax over dim={m.dim}): qfx "
                             "computes softmax over dim 1 (channels / features)")
        return QSoftmax(config=cfg)
    raise ValueError(
        f"cannot convert module {path!r} of type {type(m).__name__}: qfx converts Linear, "
        "Conv2d, BatchNorm1d/2d, ReLU, ReLU6, Hardtanh, MaxPool2d, AvgPool2d, "
        "AdaptiveAvg/MaxPool2d(k) (k dividing the input), LeakyReLU (slope 2**-k), Hardsigmoid, "
        "Hardswish, Sigmoid, Tanh, Softmax(dim=1), Flatten, Identity, Dropout and residual adds"
    )


# ---------------------------------------------------------------------- concat, mul, upsample,
# pad, padding='same' (ops-graph)
_CAT_FUNCS = (torch.cat, torch.concat)
_MUL_FUNCS = (operator.mul, torch.mul)


def _same_padding(m: nn.Conv2d, path: str) -> tuple[int, int]:
    """``padding='same'`` as symmetric integer padding: exact for stride 1 when every
    ``dilation * (kernel - 1)`` is even (odd kernels); PyTorch pads the extra row at the end
    otherwise, which a symmetric convolution cannot express, so that is refused."""
    pads = []
    for k, d in zip(m.kernel_size, m.dilation, strict=True):
        total = d * (k - 1)
        if total % 2:
            raise ValueError(f"cannot convert {path!r} (nn.Conv2d padding='same'): kernel "
                             f"{tuple(m.kernel_size)} with dilation {tuple(m.dilation)} pads "
                             "unevenly; use an odd kernel or explicit padding with a QPad")
        pads.append(total // 2)
    return pads[0], pads[1]


def _tensor_shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    return None if meta is None else tuple(meta.shape)


def _upsample_scale(scale: Any, size: Any, node: fx.Node, mode: str, what: str
                    ) -> tuple[int, int]:
    """Integer (s_h, s_w) of a nearest upsampling; one clear error otherwise."""
    if mode != "nearest":
        raise ValueError(f"cannot convert {what}: only mode='nearest' upsampling, got {mode!r}")
    if scale is None and size is not None:
        src, out = _tensor_shape(node.args[0]), _tensor_shape(node)
        if src is None or out is None:
            raise ValueError(f"cannot convert {what}: its sizes are unknown; pass "
                             "calibration_data or example_input")
        if any(o % i for o, i in zip(out[2:], src[2:], strict=True)):
            raise ValueError(f"cannot convert {what}: {tuple(src[2:])} -> {tuple(out[2:])} is "
                             "not an integer upsampling")
        scale = tuple(o // i for o, i in zip(out[2:], src[2:], strict=True))
    pair = tuple(scale) if isinstance(scale, (tuple, list)) else (scale, scale)
    if len(pair) != 2 or any(float(s) != int(s) or int(s) < 1 for s in pair):
        raise ValueError(f"cannot convert {what}: scale factor {scale!r} is not a positive "
                         "integer (only integer nearest upsampling is exact)")
    return int(pair[0]), int(pair[1])


def _convert_spatial(m: nn.Module, node: fx.Node, path: str) -> nn.Module:
    what = f"{path!r} ({type(m).__name__})"
    if isinstance(m, nn.Upsample):
        return QUpsample(_upsample_scale(m.scale_factor, m.size, node, m.mode, what))
    p = m.padding
    if len(p) != 4:
        raise ValueError(f"cannot convert {what}: padding {p!r} is not 2-D")
    return QPad(tuple(int(v) for v in p), value=float(getattr(m, "value", 0.0)))


def _convert_function(n: fx.Node, cfg: QConfig) -> tuple[nn.Module, tuple[Any, ...]] | None:
    """The qfx module and its arguments for a call of torch.cat / mul / F.interpolate (None:
    not one of them)."""
    if n.op == "call_function" and n.target in _CAT_FUNCS:
        dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else 0)
        shape = _tensor_shape(n)
        if dim != 1 and not (shape is not None and dim == 1 - len(shape)):
            raise ValueError(f"cannot convert torch.cat at node {n.name!r}: only the channel "
                             f"axis (dim=1) is supported, got dim={dim}")
        return QConcat(config=cfg), tuple(n.args[0])
    is_mul = (n.op == "call_function" and n.target in _MUL_FUNCS) or (
        n.op == "call_method" and n.target in ("mul", "mul_"))
    if is_mul and len(n.args) == 2 and all(isinstance(a, fx.Node) for a in n.args):
        return QMul(config=cfg), tuple(n.args)
    if n.op == "call_function" and n.target is F.interpolate:
        kw = dict(zip(("input", "size", "scale_factor", "mode"), n.args, strict=False))
        kw.update(n.kwargs)
        scale = _upsample_scale(kw.get("scale_factor"), kw.get("size"), n,
                                kw.get("mode", "nearest"), f"F.interpolate at node {n.name!r}")
        return QUpsample(scale), (kw["input"],)
    return None


# ---------------------------------------------------------------------- ops-window
# piecewise-linear activations (modules and functions)
def _convert_window_module(m: nn.Module, cfg: QConfig, node: fx.Node, path: str
                           ) -> nn.Module | None:
    """The qfx twin of the modules added by ops-window, None when ``m`` is none of them."""
    if isinstance(m, nn.Conv1d):
        if m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise ValueError(f"cannot convert {path!r} (nn.Conv1d): padding must be an integer "
                             f"with padding_mode='zeros', got {m.padding!r}/{m.padding_mode!r}")
        q = QConv1d(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0],
                    m.padding[0], m.dilation[0], m.groups, m.bias is not None, config=cfg)
        return _copy_params(q, m, ("weight", "bias"))
    if isinstance(m, nn.LeakyReLU):
        return QLeakyReLU(_slope(m.negative_slope, path), config=cfg)
    if isinstance(m, nn.Hardsigmoid):
        return QHardSigmoid(config=cfg)
    if isinstance(m, nn.Hardswish):
        return QHardSwish(config=cfg)
    return None


def _input_hw(node: fx.Node, what: str) -> tuple[int, int]:
    """The spatial size of a node's input (from the example shapes), or a clear error."""
    src = node.args[0] if node.args else None
    meta = src.meta.get("tensor_meta") if isinstance(src, fx.Node) else None
    if meta is None:
        raise ValueError(f"cannot convert {what}: its input size is unknown; pass "
                         "calibration_data or example_input")
    return int(meta.shape[-2]), int(meta.shape[-1])


def _adaptive_pool(m: nn.Module, cfg: QConfig, node: fx.Node, path: str) -> nn.Module:
    """AdaptiveAvg/MaxPool2d(k): an exact pool where k divides the input size (window =
    stride = size / k), global pooling for k = 1; other sizes are refused by name."""
    kind = type(m).__name__
    h, w = _input_hw(node, f"{path!r} (nn.{kind})")
    size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) * 2
    oh, ow = (h if size[0] is None else int(size[0])), (w if size[1] is None else int(size[1]))
    if h % oh or w % ow:
        raise ValueError(f"cannot convert {path!r} (nn.{kind}({m.output_size})): output size "
                         f"{(oh, ow)} does not divide the input size {(h, w)}, so the windows "
                         "overlap unevenly; qfx converts adaptive pooling only where it divides")
    if isinstance(m, nn.AdaptiveMaxPool2d):
        if m.return_indices:
            raise ValueError(f"cannot convert {path!r} (nn.AdaptiveMaxPool2d with "
                             "return_indices)")
        return QGlobalMaxPool2d((h, w)) if (oh, ow) == (1, 1) else QMaxPool2d((h // oh,
                                                                               w // ow))
    if (oh, ow) == (1, 1):
        return QGlobalAvgPool2d((h, w), config=cfg)
    return QAvgPool2d((h // oh, w // ow), config=cfg)


def _amax_twin(n: fx.Node, cfg: QConfig) -> nn.Module:
    """x.amax((2, 3), keepdim=True) / torch.amax(x, (-2, -1), True): global max pooling."""
    dim, keep = _arg(n, 1, "dim", None), _arg(n, 2, "keepdim", False)
    rank = len(n.meta["tensor_meta"].shape) if "tensor_meta" in n.meta else 4
    dims = sorted(int(d) % 4 for d in (dim if isinstance(dim, (tuple, list)) else [dim])) \
        if dim is not None else []
    if rank != 4 or dims != [2, 3] or not keep:
        raise ValueError(f"cannot convert amax at node {n.name!r}: qfx converts the maximum "
                         "over the spatial dimensions of an (N, C, H, W) tensor with "
                         "keepdim=True (global max pooling), got dim="
                         f"{dim!r}, keepdim={keep!r}")
    return QGlobalMaxPool2d(_input_hw(n, f"amax at node {n.name!r}"))


def _slope(slope: float, where: str) -> float:
    pow2_shift(slope, f"cannot convert LeakyReLU {where!r}")
    return slope


def _arg(n: fx.Node, i: int, key: str, default: Any) -> Any:
    return n.args[i] if len(n.args) > i else n.kwargs.get(key, default)


def _clamp_bounds(n: fx.Node, lo: Any, hi: Any) -> tuple[float, float]:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
        raise ValueError(f"cannot convert clamp at node {n.name!r}: qfx needs both bounds as "
                         f"numbers (got min={lo!r}, max={hi!r})")
    return float(lo), float(hi)


def _clamp_twin(n: fx.Node, cfg: QConfig) -> nn.Module:
    lo, hi = _clamp_bounds(n, _arg(n, 1, "min", None), _arg(n, 2, "max", None))
    return QHardTanh(lo, hi, config=cfg)


_WINDOW_FUNCS: dict[Any, Any] = {
    F.relu6: lambda n, cfg: QHardTanh(0.0, 6.0, config=cfg),
    F.hardtanh: lambda n, cfg: QHardTanh(*_clamp_bounds(n, _arg(n, 1, "min_val", -1.0),
                                                        _arg(n, 2, "max_val", 1.0)), config=cfg),
    torch.clamp: _clamp_twin, torch.clip: _clamp_twin,
    F.leaky_relu: lambda n, cfg: QLeakyReLU(_slope(_arg(n, 1, "negative_slope", 0.01),
                                                   n.name), config=cfg),
    F.hardsigmoid: lambda n, cfg: QHardSigmoid(config=cfg),
    F.hardswish: lambda n, cfg: QHardSwish(config=cfg),
    torch.amax: _amax_twin,
}
_WINDOW_METHODS: dict[str, Any] = {"clamp": _clamp_twin, "clip": _clamp_twin,
                                   "clamp_": _clamp_twin, "amax": _amax_twin}


def _fold_batchnorm(gm: fx.GraphModule) -> None:
    """Fold every BatchNorm2d that directly follows a Conv2d (used only by it) into the conv."""
    for n in list(gm.graph.nodes):
        if n.op != "call_module" or not isinstance(gm.get_submodule(n.target), nn.BatchNorm2d):
            continue
        prev = n.args[0]
        if prev.op != "call_module" or len(prev.users) != 1:
            continue
        conv = gm.get_submodule(prev.target)
        if not isinstance(conv, nn.Conv2d):
            continue
        bn = gm.get_submodule(n.target)
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = copy.deepcopy(conv)
            fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            fused.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
        gm.add_submodule(prev.target, fused)
        n.replace_all_uses_with(prev)
        gm.graph.erase_node(n)
    gm.recompile()


def _batches(data: Any) -> Iterable[torch.Tensor]:
    if data is None:
        return []
    if isinstance(data, torch.Tensor):
        return [data]
    if isinstance(data, torch.utils.data.Dataset) and not isinstance(
            data, torch.utils.data.IterableDataset):
        data = torch.utils.data.DataLoader(data, batch_size=256)
    return ([b[0] if isinstance(b, (tuple, list)) else b for b in data])


def _cover_outputs(gm: fx.GraphModule) -> None:
    """The formats of the model's outputs (its logits) hold every value seen in training
    (:meth:`FixedQuantizer.cover`): reshapes and flattens are looked through to the layer
    whose output quantizer makes the output."""
    modules = dict(gm.named_modules())
    out = next(n for n in gm.graph.nodes if n.op == "output")
    todo = list(out.all_input_nodes)
    while todo:
        n = todo.pop()
        if n.op == "call_module":
            q = getattr(modules[n.target], "output_quantizer", None)
            if q is not None and hasattr(q, "cover") and getattr(q, "role", "activation") \
                    == "activation":
                q.cover()
                continue
        if (n.op == "call_function" and n.target in _KEEP_FUNCS) or (
                n.op == "call_method" and n.target in _KEEP_METHODS) or (
                n.op == "call_module" and isinstance(modules[n.target], nn.Flatten)):
            todo += n.all_input_nodes[:1]


def quantize_model(
    model: nn.Module,
    config: QConfig | dict[str, Any] | None = None,
    calibration_data: Any = None,
    *,
    example_input: torch.Tensor | None = None,
    fold_batchnorm: bool = False,
    input_signed: bool | None = None,
) -> fx.GraphModule:
    """Return a fixed-point copy of ``model`` made of qfx layers, calibrated on data.

    ``calibration_data``: a tensor, a Dataset, or an iterable of batches (``(x, y)`` pairs are
    fine). The input quantizer is unsigned when the data is non-negative (``input_signed``
    overrides). ``fold_batchnorm`` folds Conv2d+BatchNorm2d pairs into one conv first.
    Unsupported modules or functions raise an error naming the module path and type.

    Example:
        >>> float_net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> qnet = quantize_model(float_net, {"bits": 6}, torch.randn(64, 4))
        >>> type(qnet.get_submodule("0")).__name__
        'QLinear'
    """
    if any(isinstance(m, (QLayer, FixedQuantizer)) for m in model.modules()):
        raise ValueError(f"{type(model).__name__} already contains qfx layers (e.g. a binarized "
                         "zoo model): train and freeze it as is; quantize_model converts plain "
                         "torch.nn models")
    if isinstance(config, dict):
        cfg = QConfig.from_dict(config)
    else:
        cfg = config or current_config()
    batches = list(_batches(calibration_data))
    example = example_input if example_input is not None else (batches[0] if batches else None)
    src = copy.deepcopy(model).eval()
    try:
        gm = fx.symbolic_trace(src)
    except Exception as err:
        raise ValueError(f"cannot trace {type(model).__name__} with torch.fx: {err}") from err
    if example is not None:
        ShapeProp(gm).propagate(example)
    if fold_batchnorm:
        _fold_batchnorm(gm)

    counter = 0
    originals = dict(gm.named_modules())
    calls: dict[str, int] = {}
    for n in list(gm.graph.nodes):
        if n.op == "call_module":
            new = _convert_module(originals[n.target], cfg, n, n.target, originals)
            calls[n.target] = calls.get(n.target, 0) + 1
            if new is not None:
                if calls[n.target] > 1:
                    # a module called twice (a shared nn.ReLU) gets one twin per call: each
                    # call site has its own data and so its own output format
                    n.target = f"{n.target}_call{calls[n.target]}"
                gm.add_submodule(n.target, new)
            else:
                n.replace_all_uses_with(n.args[0])
                gm.graph.erase_node(n)
            continue
        if n.op == "placeholder":
            signed = input_signed
            if signed is None:
                signed = bool(batches) and any(bool((b < 0).any()) for b in batches)
            name = "qinput" if counter == 0 else f"qinput_{counter}"
            counter += 1
            gm.add_submodule(name, QInput(signed=signed, config=cfg))
            with gm.graph.inserting_after(n):
                q = gm.graph.call_module(name, (n,))
            q.meta = dict(n.meta)  # same shape: later layers read it (global pooling)
            n.replace_all_uses_with(q, delete_user_cb=lambda user, q=q: user is not q)
            continue
        replacement = None
        args: tuple[Any, ...] = tuple(n.args)
        graph_op = _convert_function(n, cfg) if n.op in ("call_function", "call_method") \
            else None
        if graph_op is not None:
            replacement, args = graph_op
        elif n.op == "call_function":
            if n.target in _ADD_FUNCS and len(n.args) == 2 and all(
                    isinstance(a, fx.Node) for a in n.args) and not n.kwargs:
                replacement = QAdd(config=cfg)
            elif n.target in _RELU_FUNCS:
                replacement = QReLU(config=cfg)
            elif n.target in _WINDOW_FUNCS:  # ops-window
                replacement = _WINDOW_FUNCS[n.target](n, cfg)
            elif n.target not in _KEEP_FUNCS:
                fname = getattr(n.target, "__name__", str(n.target))
                raise ValueError(f"cannot convert function call {fname!r} at node {n.name!r}: "
                                 "qfx converts residual adds, relu and flatten; use modules "
                                 "for everything else")
        elif n.op == "call_method":
            if n.target in ("add", "add_") and len(n.args) == 2:
                replacement = QAdd(config=cfg)
            elif n.target in ("relu", "relu_"):
                replacement = QReLU(config=cfg)
            elif n.target in _WINDOW_METHODS:  # ops-window
                replacement = _WINDOW_METHODS[n.target](n, cfg)
            elif n.target not in _KEEP_METHODS:
                raise ValueError(f"cannot convert method call .{n.target}() at node {n.name!r}")
        if replacement is not None:
            name = f"{type(replacement).__name__.lower()}_{n.name}"
            gm.add_submodule(name, replacement)
            with gm.graph.inserting_after(n):
                # an activation takes only its input (bounds/slopes live in the module); a
                # graph op (concat, mul) or an add keeps the arguments chosen above
                if graph_op is None and not isinstance(replacement, QAdd):
                    args = (n.args[0],)
                new_node = gm.graph.call_module(name, args)
            new_node.meta = dict(n.meta)  # its shape, for the layers that read it
            n.replace_all_uses_with(new_node)
            gm.graph.erase_node(n)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    if cfg.cover_outputs:
        _cover_outputs(gm)
    if batches:
        with calibration(gm):
            for b in batches:
                gm(b)
    gm.train(model.training)
    return gm
