"""CIFAR-10 from a local ``cifar-10-batches-py`` folder, unpickled without code execution."""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

__all__ = [
    "load_cifar10", "read_cifar_batch", "cifar10_classes", "UnsafePickleError", "CIFAR10_MEAN",
    "CIFAR10_STD", "NORMALIZATIONS",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# "unit": pixel/256 -> k/256 in [0, 1), exact in ap_ufixed<8,0>; "standard": per-channel
# (x/255 - mean)/std as usual for CIFAR training; "none": raw 0..255 as float32.
NORMALIZATIONS = ("unit", "standard", "none")

_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILE = "test_batch"
_FORMAT_HELP = (
    "the standard CIFAR-10 python format (cifar-10-python.tar.gz extracted: a folder "
    "cifar-10-batches-py with data_batch_1..data_batch_5 and test_batch, each a pickled dict "
    "with b'data' uint8 (N, 3072) and b'labels')"
)


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the CIFAR allow-list (refused: could run code)."""


def _numpy_globals() -> dict[tuple[str, str], Any]:
    # The only callables a CIFAR batch needs: rebuild an ndarray and its dtype. Both the numpy 1
    # (numpy.core) and numpy 2 (numpy._core) spellings map to the running numpy's objects.
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 pickles bytes under protocol 2 as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): _latin1_encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    return allowed


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Only the latin1 round trip protocol 2 uses; any other codec is refused.
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(text, str):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals needed to rebuild numpy arrays."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted({f"{m}.{n}" for m, n in self._allowed}))
            raise UnsafePickleError(
                f"refusing to unpickle global {module}.{name}: a CIFAR-10 batch only needs "
                f"numpy arrays (allowed: {allowed})"
            ) from None


def read_cifar_batch(path: str | Path) -> dict[bytes, Any]:
    """Read one CIFAR python batch file with the restricted unpickler.

    Only numpy array reconstruction is allowed; any other global raises ``UnsafePickleError``.

    Example:
        >>> batch = read_cifar_batch("cifar-10-batches-py/test_batch")  # doctest: +SKIP
        >>> batch[b"data"].shape  # doctest: +SKIP
        (10000, 3072)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch file not found: {path} (expected {_FORMAT_HELP})")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        # The original files were written by Python 2: its str objects must load as bytes.
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except Exception as err:
        raise ValueError(f"{path} is not a readable CIFAR-10 batch ({err}); expected "
                         f"{_FORMAT_HELP}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _images_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = read_cifar_batch(path)
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072:
        got = (f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (N, 3072), got {got}")
    if labels is None:
        raise ValueError(f"{path}: missing b'labels'")
    try:
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: b'labels' must be a list of integers") from None
    if len(y) != len(data):
        raise ValueError(f"{path}: {len(data)} images but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"{path}: labels must be in 0..9, got {y.min()}..{y.max()}")
    return data.reshape(-1, 3, 32, 32), y


def _resolve_root(root: str | Path) -> Path:
    root = Path(root).expanduser()
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10 folder not found: {root} (expected {_FORMAT_HELP})")
    missing = [n for n in (*_TRAIN_FILES, _TEST_FILE) if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 folder {root} lacks {', '.join(missing)} (expected {_FORMAT_HELP})"
        )
    return root


def _normalize(images: np.ndarray, normalize: str) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32)
    if normalize == "unit":
        return x / 256.0
    if normalize == "standard":
        mean = torch.tensor(CIFAR10_MEAN).reshape(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD).reshape(1, 3, 1, 1)
        return (x / 255.0 - mean) / std
    return x


def load_cifar10(
    root: str | Path,
    normalize: str = "unit",
    max_train: int | None = None,
    max_test: int | None = None,
) -> tuple[TensorDataset, TensorDataset]:
    """CIFAR-10 train (50,000) / test (10,000) sets from a local python-format folder.

    ``root`` is the ``cifar-10-batches-py`` folder or its parent. Images are float32
    (N, 3, 32, 32), labels int64. ``normalize``: ``"unit"`` (pixel/256, in [0, 1) and exact in
    ``ap_ufixed<8,0>``), ``"standard"`` (per-channel mean/std) or ``"none"`` (0..255).
    ``max_train`` / ``max_test`` keep the first N samples (for quick runs).

    Example:
        >>> train, test = load_cifar10("~/data/cifar-10-batches-py")  # doctest: +SKIP
        >>> tuple(train.tensors[0].shape)  # doctest: +SKIP
        (50000, 3, 32, 32)
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(
            f"invalid normalize {normalize!r}; allowed: {', '.join(NORMALIZATIONS)}"
        )
    for name, value in (("max_train", max_train), ("max_test", max_test)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    folder = _resolve_root(root)
    parts = [_images_labels(folder / n) for n in _TRAIN_FILES]
    x_train = np.concatenate([p[0] for p in parts])[:max_train]
    y_train = np.concatenate([p[1] for p in parts])[:max_train]
    x_test, y_test = _images_labels(folder / _TEST_FILE)
    x_test, y_test = x_test[:max_test], y_test[:max_test]
    return (
        TensorDataset(_normalize(x_train, normalize), torch.from_numpy(y_train.copy())),
        TensorDataset(_normalize(x_test, normalize), torch.from_numpy(y_test.copy())),
    )


def cifar10_classes(root: str | Path) -> list[str] | None:
    """Class names from ``batches.meta`` if present (read with the restricted unpickler).

    Example:
        >>> cifar10_classes("~/data/cifar-10-batches-py")[:2]  # doctest: +SKIP
        ['airplane', 'automobile']
    """
    meta = _resolve_root(root) / "batches.meta"
    if not meta.is_file():
        return None
    names = read_cifar_batch(meta).get(b"label_names")
    if not isinstance(names, list):
        return None
    return [n.decode("utf-8", errors="replace") if isinstance(n, bytes) else str(n) for n in names]
