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
from qfx.nn.activation import QHardTanh, QReLU
from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config
from qfx.nn.io import QFlatten, QInput
from qfx.nn.linear import QConv2d, QLinear
from qfx.nn.merge import QAdd
from qfx.nn.norm import QBatchNorm1d, QBatchNorm2d
from qfx.nn.pooling import QAvgPool2d, QGlobalAvgPool2d, QMaxPool2d
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
        if m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise ValueError(f"cannot convert {path!r} (nn.Conv2d): padding must be integers "
                             f"with padding_mode='zeros', got {m.padding!r}/{m.padding_mode!r}")
        q = QConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
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
        pad = m.padding if isinstance(m.padding, tuple) else (m.padding, m.padding)
        if any(pad) or m.ceil_mode or m.divisor_override:
            raise ValueError(f"cannot convert {path!r} (nn.AvgPool2d): only padding=0, "
                             "ceil_mode=False and no divisor_override are supported")
        return QAvgPool2d(m.kernel_size, m.stride, config=cfg)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) * 2
        if tuple(size) != (1, 1):
            raise ValueError(f"cannot convert {path!r} (nn.AdaptiveAvgPool2d): only output "
                             f"size 1 (global average pooling) is supported, got {size}")
        meta = node.args[0].meta.get("tensor_meta") if isinstance(node.args[0], fx.Node) \
            else None
        if meta is None:
            raise ValueError(f"cannot convert {path!r} (nn.AdaptiveAvgPool2d): its input size "
                             "is unknown; pass calibration_data or example_input")
        return QGlobalAvgPool2d(tuple(meta.shape[-2:]), config=cfg)
    if isinstance(m, nn.Flatten):
        return QFlatten(m.start_dim, m.end_dim)
    if isinstance(m, (nn.Identity, nn.Dropout)):
        return None
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
        "AdaptiveAvgPool2d(1), Flatten, Identity, Dropout, Sigmoid, Tanh, Softmax(dim=1) and "
        "residual adds"
    )


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
        if n.op == "call_function":
            if n.target in _ADD_FUNCS and len(n.args) == 2 and all(
                    isinstance(a, fx.Node) for a in n.args) and not n.kwargs:
                replacement = QAdd(config=cfg)
            elif n.target in _RELU_FUNCS:
                replacement = QReLU(config=cfg)
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
            elif n.target not in _KEEP_METHODS:
                raise ValueError(f"cannot convert method call .{n.target}() at node {n.name!r}")
        if replacement is not None:
            name = f"{type(replacement).__name__.lower()}_{n.name}"
            gm.add_submodule(name, replacement)
            with gm.graph.inserting_after(n):
                new_node = gm.graph.call_module(name, tuple(n.args[:len(n.args)]))
            new_node.meta = dict(n.meta)  # its shape, for the layers that read it
            n.replace_all_uses_with(new_node)
            gm.graph.erase_node(n)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    if batches:
        with calibration(gm):
            for b in batches:
                gm(b)
    gm.train(model.training)
    return gm
