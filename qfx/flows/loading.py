"""Load what a command was given: a frozen model file, or a training checkpoint to freeze."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from qfx.ir.graph import Graph
from qfx.ir.serialize import load_graph

__all__ = ["is_frozen_file", "load_frozen", "freeze_checkpoint"]


def is_frozen_file(path: str | Path) -> bool:
    """True for a file written by ``qfx.save_graph`` (an .npz holding ``__graph__``)."""
    try:
        with zipfile.ZipFile(path) as z:
            return "__graph__.npy" in z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def freeze_checkpoint(path: str | Path, *, data_root: str | None = None) -> Graph:
    """Rebuild a ``qfx train`` checkpoint's model and freeze it (the example input comes
    from the dataset the model was trained on)."""
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
    graph = freeze(model, x.to(torch.float32))
    graph.meta.update({"source": str(path), "dataset": config.dataset})
    return graph


def load_frozen(path: str | Path, *, data_root: str | None = None) -> Graph:
    """A frozen graph from ``path``: a ``.qfx.npz`` frozen model, or a training checkpoint.

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
    from qfx.training.checkpoint import sidecar_path

    if sidecar_path(path).is_file():
        return freeze_checkpoint(path, data_root=data_root)
    raise ValueError(f"{path} is neither a frozen qfx model (.qfx.npz from `qfx freeze`) nor a "
                     "training checkpoint (checkpoint.npz with its .json sidecar)")
