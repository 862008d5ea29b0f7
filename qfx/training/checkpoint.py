"""Pickle-free checkpoints: tensors in ``.npz`` (allow_pickle=False) plus a JSON sidecar.

``model.npz`` holds every tensor of the model (and optionally the optimizer) state dict;
``model.json`` holds the structure, the exact torch dtype and shape of each tensor, metadata
(epoch, history, config) and the SHA-256 of the ``.npz`` so a mismatched pair is detected.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qfx.atomic import atomic_open, temp_beside

__all__ = [
    "save_checkpoint", "load_checkpoint", "read_checkpoint", "sidecar_path", "CheckpointError",
]

_FORMAT = "qfx-checkpoint"
_VERSION = 1
# torch dtypes numpy has no twin for are stored bit-for-bit as same-size integers.
_NUMPY_DTYPES = {
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
    torch.float32, torch.float64, torch.complex64, torch.complex128,
}
_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


class CheckpointError(ValueError):
    """A checkpoint that is missing, malformed, or does not fit the model."""


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of checkpoint ``path`` (``x.npz`` -> ``x.json``).

    Example:
        >>> sidecar_path("runs/a/checkpoint.npz").name
        'checkpoint.json'
    """
    return Path(path).with_suffix(".json")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu().contiguous()
    if t.dtype not in _NUMPY_DTYPES:
        size = t.element_size()
        if size not in _INT_OF_SIZE:
            raise CheckpointError(f"cannot store tensors of dtype {t.dtype}")
        t = t.view(_INT_OF_SIZE[size])
    return t.numpy()


def _from_numpy(arr: np.ndarray, dtype_name: str, shape: list[int], key: str) -> torch.Tensor:
    dtype = getattr(torch, dtype_name, None)
    if not isinstance(dtype, torch.dtype):
        raise CheckpointError(f"tensor {key!r} has unknown dtype {dtype_name!r}")
    t = torch.from_numpy(np.array(arr, copy=True))
    if t.dtype != dtype:
        t = t.view(dtype)
    if list(t.shape) != list(shape):
        raise CheckpointError(f"tensor {key!r} has shape {list(t.shape)}, sidecar says {shape}")
    return t


class _Encoder:
    """Turns nested state (dicts, lists, tuples, tensors, scalars) into JSON + named arrays."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.specs: dict[str, dict[str, Any]] = {}

    def encode(self, obj: Any, key: str) -> Any:
        if isinstance(obj, torch.Tensor):
            self.arrays[key] = _to_numpy(obj)
            self.specs[key] = {"dtype": _dtype_name(obj.dtype), "shape": list(obj.shape)}
            return {"__tensor__": key}
        if isinstance(obj, Mapping):
            if all(isinstance(k, str) for k in obj):
                return {"__dict__": {k: self.encode(v, f"{key}/{k}") for k, v in obj.items()}}
            # Optimizer state is keyed by int parameter index.
            return {"__items__": [[self._scalar(k, key), self.encode(v, f"{key}/{k}")]
                                  for k, v in obj.items()]}
        if isinstance(obj, (list, tuple)):
            items = [self.encode(v, f"{key}/{i}") for i, v in enumerate(obj)]
            return {"__tuple__": items} if isinstance(obj, tuple) else items
        return self._scalar(obj, key)

    @staticmethod
    def _scalar(obj: Any, key: str) -> Any:
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise CheckpointError(f"cannot store {type(obj).__name__} at {key!r} in a checkpoint")


def _decode(obj: Any, arrays: Mapping[str, np.ndarray], specs: Mapping[str, Any]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, arrays, specs) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            key = obj["__tensor__"]
            if key not in arrays or key not in specs:
                raise CheckpointError(f"tensor {key!r} is missing from the checkpoint")
            return _from_numpy(arrays[key], specs[key]["dtype"], specs[key]["shape"], key)
        if "__dict__" in obj:
            return {k: _decode(v, arrays, specs) for k, v in obj["__dict__"].items()}
        if "__items__" in obj:
            return {k: _decode(v, arrays, specs) for k, v in obj["__items__"]}
        if "__tuple__" in obj:
            return tuple(_decode(v, arrays, specs) for v in obj["__tuple__"])
    return obj


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    epoch: int | None = None,
    history: list[dict[str, Any]] | None = None,
    metadata: Mapping[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model``'s state dict (and optionally the optimizer's) to ``path`` (``.npz``)
    plus its JSON sidecar, both atomically. No pickle anywhere. Returns the ``.npz`` path.

    ``metadata`` and ``history`` must be JSON-serialisable; ``extra`` is any other state
    (nested dicts, lists, tensors, scalars: e.g. a second copy of the model's weights) that
    :func:`load_checkpoint` returns as it was.

    Example:
        >>> import tempfile
        >>> net = nn.Linear(2, 1)
        >>> p = save_checkpoint(Path(tempfile.mkdtemp()) / "net.npz", net, epoch=3,
        ...                     metadata={"model": "x"})
        >>> load_checkpoint(p, nn.Linear(2, 1))["epoch"]
        3
    """
    path = Path(path)
    if path.suffix != ".npz":
        raise CheckpointError(f"checkpoint path must end in .npz, got {path}")
    enc = _Encoder()
    model_state = enc.encode(dict(model.state_dict()), "model")
    optim_state = None if optimizer is None else enc.encode(optimizer.state_dict(), "optimizer")
    extra_state = None if extra is None else enc.encode(dict(extra), "extra")
    # Write the npz to a temp file first: its hash goes into the sidecar.
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **enc.arrays)
            f.flush()
            os.fsync(f.fileno())
        side = {
            "format": _FORMAT,
            "version": _VERSION,
            "epoch": epoch,
            "history": history or [],
            "metadata": dict(metadata or {}),
            "model_state": model_state,
            "optimizer_state": optim_state,
            "extra_state": extra_state,
            "tensors": enc.specs,
            "npz_sha256": _sha256(Path(tmp)),
        }
        try:
            text = json.dumps(side, indent=1, allow_nan=True)
        except TypeError as err:
            raise CheckpointError(f"checkpoint metadata/history is not JSON-serialisable: "
                                  f"{err}") from None
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    with atomic_open(sidecar_path(path), "w") as f:
        f.write(text)
    return path


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The sidecar dict and the raw arrays of checkpoint ``path`` (verified, no pickle).

    Example:
        >>> import tempfile
        >>> p = save_checkpoint(Path(tempfile.mkdtemp()) / "net.npz", nn.Linear(2, 1), epoch=20)
        >>> side, arrays = read_checkpoint(p)
        >>> side["epoch"], sorted(arrays)
        (20, ['model/bias', 'model/weight'])
    """
    path = Path(path)
    side_path = sidecar_path(path)
    for p in (path, side_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file not found: {p} (a qfx checkpoint is a .npz "
                                  f"with a .json sidecar next to it)")
    try:
        side = json.loads(side_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{side_path} is not valid JSON: {err}") from None
    if not isinstance(side, dict) or side.get("format") != _FORMAT:
        raise CheckpointError(f"{side_path} is not a qfx checkpoint sidecar")
    if side.get("version") != _VERSION:
        raise CheckpointError(f"{side_path}: unsupported checkpoint version "
                              f"{side.get('version')!r} (this qfx reads {_VERSION})")
    if side.get("npz_sha256") != _sha256(path):
        raise CheckpointError(f"{path} does not match its sidecar {side_path.name} (SHA-256 "
                              f"differs): the pair was not written together")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return side, arrays


def _optional_keys(model: nn.Module) -> set[str]:
    """State keys a module has only at times (``optional_state``: e.g. the held range of a
    learned-width constant, set in the settle phase): a checkpoint may carry them or not."""
    return {f"{name}.{key}" if name else key for name, m in model.named_modules()
            for key in getattr(m, "optional_state", ())}


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer``) exactly from a checkpoint written by
    :func:`save_checkpoint`; returns the sidecar (``epoch``, ``history``, ``metadata``) and
    its ``extra`` state (None if it has none).

    Every tensor must match the model's key, shape and dtype (bool and int64 buffers included);
    otherwise a CheckpointError says which.

    Example:
        >>> import tempfile
        >>> net = nn.Linear(2, 1)
        >>> p = save_checkpoint(Path(tempfile.mkdtemp()) / "net.npz", net)
        >>> other = nn.Linear(2, 1)
        >>> _ = load_checkpoint(p, other)
        >>> bool(torch.equal(other.weight, net.weight))
        True
    """
    side, arrays = read_checkpoint(path)
    state = _decode(side["model_state"], arrays, side["tensors"])
    expected = model.state_dict()
    optional = _optional_keys(model)
    missing = [k for k in expected if k not in state and k not in optional]
    unexpected = [k for k in state if k not in expected and k not in optional]
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit the model: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}"
        )
    for k, v in state.items():
        want = expected.get(k)
        if isinstance(want, torch.Tensor) and (v.dtype != want.dtype or v.shape != want.shape):
            raise CheckpointError(
                f"{path}: {k} is {_dtype_name(v.dtype)}{list(v.shape)} in the checkpoint but "
                f"{_dtype_name(want.dtype)}{list(want.shape)} in the model"
            )
    model.load_state_dict(state, strict=True)
    if optimizer is not None:
        if side.get("optimizer_state") is None:
            raise CheckpointError(f"{path} has no optimizer state to resume from")
        optimizer.load_state_dict(_decode(side["optimizer_state"], arrays, side["tensors"]))
    extra = side.get("extra_state")
    return {**{k: side[k] for k in ("epoch", "history", "metadata")},
            "extra": None if extra is None else _decode(extra, arrays, side["tensors"])}
