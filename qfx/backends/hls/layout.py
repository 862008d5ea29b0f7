"""Data layout shared by the HLS firmware, its testbench and the C-simulation harness.

* Arrays are flat and in PyTorch order (NCHW without the batch: channel-major), so a flatten is
  a no-op and a node's C++ array equals ``run_graph(...).trace[node].reshape(batch, -1)[i]``.
* Vector files (``tb/inputs.txt``, ``tb/expected.txt``, the testbench's outputs) are text: lines
  starting with ``#`` are comments; every other line is one sample, the raw integer mantissas
  (decimal int64) of all ports concatenated in port order, each port flattened in NCHW order.
* Trace files (testbench built with ``-DQFX_TRACE``): one line per node and sample,
  ``<node> <sample> <n> v0 ... v{n-1}`` with the node's raw output mantissas.
* AXI-Stream packing (the ``<project>_axis`` wrapper): one element per stream word; the element's
  raw mantissa (W bits, two's complement when signed) in ``data[W-1:0]``; on output the bits
  above W repeat the sign bit (signed types) or are 0; on input they are ignored. Inputs arrive as
  one stream of all input elements in port order; TLAST is set on the last output word only.
  The order of a port's elements on the wire depends on the architecture (:func:`wire_order`):
  NCHW for ``io="parallel"``, pixel by pixel with the channels innermost (HWC) for
  ``io="stream"``, the order in which a streaming design consumes and produces them.
* Streaming architecture (``io="stream"``): a 3-D edge ``[C, H, W]`` is ``H*W`` pixels of ``C``
  values, a 1-D edge ``[N]`` one pixel of ``N`` values (:func:`edge_pixels`).

Example:
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "v.txt")
    >>> _ = write_vectors(p, np.array([[1, -2, 3], [4, 5, -6]]), ["two samples"])
    >>> read_vectors(p).tolist()
    [[1, -2, 3], [4, 5, -6]]
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qfx.fixed.fixed_type import FixedType

__all__ = [
    "VECTORS_HEADER",
    "axis_unpack",
    "axis_words",
    "default_axis_width",
    "edge_pixels",
    "read_trace",
    "read_vectors",
    "wire_order",
    "write_vectors",
]

#: First line of every vector file qfx writes.
VECTORS_HEADER = "# qfx-vectors v1"


def edge_pixels(shape: Sequence[int]) -> tuple[int, int]:
    """``(values per pixel, pixels)`` of an edge in the streaming architecture: ``[C, H, W]`` is
    ``H*W`` pixels of ``C`` channels, ``[C, L]`` ``L`` pixels of ``C`` channels, ``[N]`` one
    pixel of ``N`` values.

    Example:
        >>> edge_pixels((16, 8, 8)), edge_pixels((10,))
        ((16, 64), (10, 1))
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) == 3:
        return shape[0], shape[1] * shape[2]
    if len(shape) == 2:  # [C, L] (conv1d): L pixels of C channels
        return shape[0], shape[1]
    if len(shape) == 1:
        return shape[0], 1
    raise ValueError(f"the streaming architecture handles [C, H, W], [C, L] and [N] tensors, not "
                     f"shape "
                     f"{list(shape)}")


def wire_order(shape: Sequence[int], io: str) -> np.ndarray:
    """For each position on the AXI-Stream wire, the NCHW index of the element sent there:
    identity for ``io="parallel"``, HWC (pixel by pixel, channels innermost) for ``"stream"``.

    Example:
        >>> wire_order((2, 1, 3), "stream").tolist(), wire_order((2, 1, 3), "parallel").tolist()
        ([0, 3, 1, 4, 2, 5], [0, 1, 2, 3, 4, 5])
    """
    n = int(math.prod(shape))
    if io == "parallel":
        return np.arange(n, dtype=np.int64)
    chan, pixels = edge_pixels(shape)
    return np.arange(n, dtype=np.int64).reshape(chan, pixels).T.ravel()


def write_vectors(path: str | os.PathLike[str], raw: np.ndarray,
                  comments: Sequence[str] = ()) -> Path:
    """Write raw mantissas, one sample per line (``raw`` has shape ``(samples, values)``).

    Example:
        >>> import tempfile, os
        >>> p = write_vectors(os.path.join(tempfile.mkdtemp(), "x.txt"), np.zeros((1, 2), int))
        >>> p.read_text().splitlines()[-1]
        '0 0'
    """
    arr = np.asarray(raw)
    if arr.ndim != 2:
        raise ValueError(f"vectors must have shape (samples, values), got {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"vectors hold raw integer mantissas, got dtype {arr.dtype}")
    path = Path(path)
    lines = [VECTORS_HEADER, f"# samples={arr.shape[0]} values={arr.shape[1]}"]
    lines += [f"# {c}" for c in comments]
    with open(path, "w", encoding="ascii") as fh:
        fh.write("\n".join(lines) + "\n")
        if arr.size:
            np.savetxt(fh, arr.astype(np.int64), fmt="%d", delimiter=" ")
    return path


def read_vectors(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a vector file into an int64 array of shape ``(samples, values)``.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "y.txt")
        >>> _ = write_vectors(p, np.array([[7, -1]]))
        >>> read_vectors(p).dtype
        dtype('int64')
    """
    rows: list[list[int]] = []
    with open(path, encoding="ascii") as fh:
        for lineno, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                rows.append([int(v) for v in text.split()])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: not a line of integers: {text[:60]!r}") \
                    from None
            if len(rows[-1]) != len(rows[0]):
                raise ValueError(f"{path}:{lineno}: {len(rows[-1])} values, the first sample "
                                 f"has {len(rows[0])}")
    if not rows:
        return np.zeros((0, 0), dtype=np.int64)
    return np.array(rows, dtype=np.int64)


def read_trace(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a ``-DQFX_TRACE`` file: node name -> raw outputs of shape ``(samples, n)``, in the
    order the nodes ran.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "t.txt")
        >>> _ = open(p, "w").write("fc 0 2 5 -1\\nfc 1 2 0 3\\n")
        >>> read_trace(p)["fc"].tolist()
        [[5, -1], [0, 3]]
    """
    rows: dict[str, dict[int, list[int]]] = {}
    with open(path, encoding="ascii") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                name, sample, n = parts[0], int(parts[1]), int(parts[2])
                values = [int(v) for v in parts[3:]]
            except (IndexError, ValueError):
                raise ValueError(f"{path}:{lineno}: not a trace line") from None
            if len(values) != n:
                raise ValueError(f"{path}:{lineno}: node {name} announces {n} values, "
                                 f"has {len(values)}")
            rows.setdefault(name, {})[sample] = values
    return {name: np.array([per[s] for s in sorted(per)], dtype=np.int64)
            for name, per in rows.items()}


def axis_words(raw: np.ndarray, t: FixedType, dma_width: int) -> np.ndarray:
    """AXI-Stream words (as unsigned Python ints in an object array) carrying raw mantissas of
    type ``t``, packed as the ``<project>_axis`` wrapper writes its outputs.

    Example:
        >>> axis_words(np.array([-1, 3]), FixedType(4, 2), 8).tolist()
        [255, 3]
    """
    _check_dma(t, dma_width)
    mask = (1 << dma_width) - 1
    return np.array([int(v) & mask for v in np.asarray(raw).ravel()], dtype=object)


def axis_unpack(words: Sequence[int] | np.ndarray, t: FixedType, dma_width: int) -> np.ndarray:
    """Raw int64 mantissas of type ``t`` from AXI-Stream words (the bits above W are ignored).

    Example:
        >>> axis_unpack([255, 3, 0x1F], FixedType(4, 2), 8).tolist()
        [-1, 3, -1]
    """
    _check_dma(t, dma_width)
    low = (1 << t.width) - 1
    out = []
    for w in np.asarray(words, dtype=object).ravel():
        v = int(w) & low
        if t.signed and v >> (t.width - 1):
            v -= 1 << t.width
        out.append(v)
    return np.array(out, dtype=np.int64)


def _check_dma(t: FixedType, dma_width: int) -> None:
    if dma_width < t.width:
        raise ValueError(f"a {dma_width}-bit stream word cannot carry {t.cpp()} ({t.width} bits)")


def default_axis_width(widths: Sequence[int]) -> int:
    """Smallest of 8, 16, 32, 64 bits that carries every port's width.

    Example:
        >>> default_axis_width([8, 12])
        16
    """
    need = max(widths)
    return max(8, 1 << math.ceil(math.log2(need))) if need > 8 else 8
