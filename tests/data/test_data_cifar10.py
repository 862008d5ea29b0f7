"""CIFAR-10 loading from files in the exact standard python-pickle format, and the restricted
unpickler that refuses anything but numpy arrays."""

from __future__ import annotations

import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from qfx.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    UnsafePickleError,
    cifar10_classes,
    get_dataset,
    load_cifar10,
    read_cifar_batch,
)

N_PER_BATCH = 3


def _batch(seed: int, n: int = N_PER_BATCH) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": f"training batch {seed}".encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


class _Py2StylePickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), as the original CIFAR files have them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _py2_dumps(obj: object) -> bytes:
    buf = io.BytesIO()
    _Py2StylePickler(buf, protocol=2).dump(obj)
    # numpy 1.x (and the original files) name the reconstructor numpy.core.multiarray.
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def _write_folder(root: Path, py2: bool = False) -> dict[str, dict[bytes, object]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": _batch(i) for i in range(1, 6)}
    batches["test_batch"] = _batch(99, n=4)
    for name, batch in batches.items():
        blob = _py2_dumps(batch) if py2 else pickle.dumps(batch, protocol=2)
        (folder / name).write_bytes(blob)
    meta = {b"label_names": [n.encode() for n in ("airplane", "automobile", "bird", "cat",
                                                  "deer", "dog", "frog", "horse", "ship",
                                                  "truck")],
            b"num_cases_per_batch": N_PER_BATCH, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return batches


@pytest.mark.parametrize("py2", [False, True], ids=["py3-protocol2", "py2-style"])
def test_loads_standard_format(tmp_path: Path, py2: bool) -> None:
    batches = _write_folder(tmp_path, py2=py2)
    train, test = load_cifar10(tmp_path / "cifar-10-batches-py", normalize="none")
    assert len(train) == 5 * N_PER_BATCH and len(test) == 4
    x, y = train.tensors
    assert x.shape == (15, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    # Order: data_batch_1..5, rows as stored; channel-major R, G, B planes of 32x32.
    expect = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    np.testing.assert_array_equal(x.numpy().reshape(15, 3072), expect.astype(np.float32))
    first = batches["data_batch_1"][b"data"][0]
    assert x[0, 1, 2, 3].item() == first[1024 + 2 * 32 + 3]
    assert y.tolist() == sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert test.tensors[1].tolist() == batches["test_batch"][b"labels"]


def test_parent_folder_and_registry(tmp_path: Path) -> None:
    _write_folder(tmp_path)
    split = get_dataset("cifar10", root=str(tmp_path), max_train=7, max_test=2)
    assert len(split.train) == 7 and len(split.test) == 2
    assert split.input_shape == (3, 32, 32) and split.num_classes == 10
    assert split.classes[:2] == ["airplane", "automobile"]
    assert cifar10_classes(tmp_path)[-1] == "truck"


def test_normalisations(tmp_path: Path) -> None:
    batches = _write_folder(tmp_path)
    raw = torch.from_numpy(batches["test_batch"][b"data"].astype(np.float32)).reshape(4, 3, 32, 32)
    _, unit = load_cifar10(tmp_path, normalize="unit")
    assert torch.equal(unit.tensors[0], raw / 256)
    assert unit.tensors[0].max() < 1.0
    _, std = load_cifar10(tmp_path, normalize="standard")
    mean = torch.tensor(CIFAR10_MEAN).reshape(1, 3, 1, 1)
    sd = torch.tensor(CIFAR10_STD).reshape(1, 3, 1, 1)
    assert torch.allclose(std.tensors[0], (raw / 255 - mean) / sd)
    with pytest.raises(ValueError, match="invalid normalize 'zscore'; allowed: unit, standard"):
        load_cifar10(tmp_path, normalize="zscore")


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 folder not found: .*nope.*"
                                                r"cifar-10-batches-py with data_batch_1"):
        load_cifar10(tmp_path / "nope")
    _write_folder(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(FileNotFoundError, match=r"lacks data_batch_3 \(expected the standard"):
        load_cifar10(tmp_path)


class _Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch pwned",))


def test_refuses_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil"
    evil = pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2)
    path.write_bytes(evil.replace(b"touch pwned", f"touch {marker}".encode()))
    with pytest.raises(UnsafePickleError, match=r"refusing to unpickle global (posix|os)\.system"):
        read_cifar_batch(path)
    assert not marker.exists()


def test_refuses_other_codecs_and_builtins(tmp_path: Path) -> None:
    path = tmp_path / "codec"
    # _codecs.encode is allowed only for the latin1 round trip protocol 2 uses for bytes.
    path.write_bytes(b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcX\x06\x00\x00\x00"
                     b"base64\x86R.")
    with pytest.raises(UnsafePickleError, match="refusing _codecs.encode with encoding 'base64'"):
        read_cifar_batch(path)
    path.write_bytes(pickle.dumps({b"data": eval}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"(__builtin__|builtins)\.eval"):
        read_cifar_batch(path)


def test_malformed_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _write_folder(tmp_path)
    bad = _batch(1)
    bad[b"data"] = bad[b"data"].astype(np.int16)
    (folder / "data_batch_2").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_2: b'data' must be a uint8 array of shape "
                                         r"\(N, 3072\), got int16"):
        load_cifar10(folder)
    bad = _batch(1)
    bad[b"labels"] = bad[b"labels"][:-1]
    (folder / "data_batch_2").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        load_cifar10(folder)
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="data_batch_2 is not a readable CIFAR-10 batch"):
        load_cifar10(folder)
    (folder / "data_batch_2").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ValueError, match="expected a pickled dict, got list"):
        load_cifar10(folder)
