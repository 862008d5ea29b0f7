"""Load what a command or an API call was given, as a frozen :class:`~qfx.ir.graph.Graph`: a
frozen ``.qfx.npz``, a training checkpoint to freeze, a (Q)ONNX file to import, or a qfx model
(``torch.nn.Module``) to freeze with an example input. The backends only ever see the graph."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qfx.ir.graph import Graph
from qfx.ir.serialize import load_graph

__all__ = ["is_frozen_file", "is_onnx_file", "load_frozen", "freeze_checkpoint",
           "resolve_graph", "checkpoint_inputs"]

#: File suffixes read as (Q)ONNX models and imported (:func:`qfx.frontends.onnx.import_onnx`).
ONNX_SUFFIXES = (".onnx",)


def is_frozen_file(path: str | Path) -> bool:
    """True for a file written by ``qfx.save_graph`` (an .npz holding ``__graph__``)."""
    try:
        with zipfile.ZipFile(path) as z:
            return "__graph__.npy" in z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def is_onnx_file(path: str | Path) -> bool:
    """True for a path named like an ONNX model (``*.onnx``), whether or not it is readable.

    Example:
        >>> is_onnx_file("model.onnx"), is_onnx_file("model.qfx.npz")
        (True, False)
    """
    return Path(path).suffix.lower() in ONNX_SUFFIXES


def freeze_checkpoint(path: str | Path, *, data_root: str | None = None,
                      fold_thresholds: bool = False) -> Graph:
    """Rebuild a ``qfx train`` checkpoint's model and freeze it (the example input comes
    from the dataset the model was trained on; ``fold_thresholds``: see
    :func:`qfx.frontends.pytorch.freeze`)."""
    from qfx.data import get_dataset
    from qfx.frontends.pytorch import freeze
    from qfx.training.config import parse_train_config, restore_model

    options = {"root": data_root} if data_root else None
    model, side = restore_model(path, dataset_options=options)
    config = parse_train_config(side["metadata"]["config"])
    if data_root:
        config.dataset_options["root"] = data_root
    split = get_dataset(config.dataset, **config.dataset_options)
    x = split.test.tensors[0][:1]
    if not side["metadata"].get("quantized"):
        raise ValueError(f"{path} holds a float model (trained without a quantization "
                         "section): nothing to freeze; add `quantization:` to the flow")
    graph = freeze(model, x.to(torch.float32), fold_thresholds=fold_thresholds)
    graph.meta.update({"source": str(path), "dataset": config.dataset})
    return graph


def load_frozen(path: str | Path, *, data_root: str | None = None,
                fold_thresholds: bool = False) -> Graph:
    """A frozen graph from ``path``: a ``.qfx.npz`` frozen model, a training checkpoint, or a
    (Q)ONNX model (``*.onnx``, imported exactly or refused with an ``OnnxImportError``).
    ``fold_thresholds`` folds a checkpoint's BatchNorm + activation pairs into
    ``multithreshold`` nodes (the ONNX importer always does so for float BatchNorm).

    Example:
        >>> load_frozen("missing.npz")
        Traceback (most recent call last):
        ...
        FileNotFoundError: no model file at missing.npz
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    if is_frozen_file(path):
        return load_graph(path)
    if is_onnx_file(path):
        from qfx.frontends.onnx import import_onnx  # loads onnx: only when it is needed

        return import_onnx(path)
    from qfx.training.checkpoint import sidecar_path

    if sidecar_path(path).is_file():
        return freeze_checkpoint(path, data_root=data_root, fold_thresholds=fold_thresholds)
    raise ValueError(f"{path} is neither a frozen qfx model (.qfx.npz from `qfx freeze`) nor a "
                     "training checkpoint (checkpoint.npz with its .json sidecar)")


def resolve_graph(model_or_graph: Any, example_input: Any = None, *,
                  data_root: str | None = None) -> Graph:
    """The frozen graph of what an export was given: a :class:`Graph` itself, a path
    (:func:`load_frozen`: ``.qfx.npz``, training checkpoint or ``.onnx``), or a qfx model
    (``torch.nn.Module``) frozen with ``example_input`` (one input batch).

    Example:
        >>> import qfx, torch
        >>> from qfx.nn import QInput, QLinear
        >>> net = torch.nn.Sequential(QInput(8), QLinear(3, 2))
        >>> with qfx.calibration(net):
        ...     _ = net(torch.randn(16, 3))
        >>> [n.op for n in resolve_graph(net.eval(), torch.randn(1, 3)).nodes]
        ['input', 'dense']
        >>> resolve_graph(net)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: exporting a qfx model needs example_input (one input batch) to freeze it; ...
    """
    if isinstance(model_or_graph, Graph):
        return model_or_graph
    if isinstance(model_or_graph, (str, os.PathLike)):
        return load_frozen(model_or_graph, data_root=data_root)
    if isinstance(model_or_graph, torch.nn.Module):
        if example_input is None:
            raise ValueError("exporting a qfx model needs example_input (one input batch) to "
                             "freeze it; or pass a frozen Graph or a .qfx.npz path")
        from qfx.frontends.pytorch import freeze

        x = example_input if isinstance(example_input, torch.Tensor) else torch.as_tensor(
            np.asarray(example_input), dtype=torch.float32)
        return freeze(model_or_graph, x)
    raise ValueError(f"cannot export a {type(model_or_graph).__name__}: pass a qfx model "
                     "(torch.nn.Module) with example_input, a frozen Graph, or a path to a "
                     "frozen .qfx.npz / training checkpoint")


def checkpoint_inputs(path: str | Path, n: int, data_root: str | None = None
                      ) -> np.ndarray | None:
    """The first ``n`` held-out inputs of a training checkpoint's dataset, as float64 (the
    test vectors ``qfx export`` gives a checkpoint); None for anything else (a frozen file, an
    ONNX model, a checkpoint without its sidecar).

    Example:
        >>> checkpoint_inputs("model.qfx.npz", 4) is None
        True
    """
    from qfx.training.checkpoint import sidecar_path

    path = Path(path)
    if is_frozen_file(path) or is_onnx_file(path) or not sidecar_path(path).is_file():
        return None
    from qfx.data import get_dataset
    from qfx.training.checkpoint import read_checkpoint
    from qfx.training.config import parse_train_config

    side, _ = read_checkpoint(path)
    config = parse_train_config((side.get("metadata") or {}).get("config") or {})
    if data_root:
        config.dataset_options["root"] = data_root
    split = get_dataset(config.dataset, **config.dataset_options)
    x = split.test.tensors[0][:n]
    return x.detach().cpu().numpy().astype(np.float64)
