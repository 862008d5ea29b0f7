"""Frontends: every way a model becomes a frozen integer `Graph`.

- :func:`freeze` (:mod:`qfx.frontends.pytorch`): a trained qfx PyTorch model, traced with torch.fx.
- :func:`import_onnx` (:mod:`qfx.frontends.onnx`): a QONNX graph with power-of-two scales
  (Brevitas, FINN, qfx's own export); loaded on first use (it imports onnx).

Both build the graph through :mod:`qfx.ir.builder` and end in :func:`qfx.ir.verify`, so every
graph a backend sees has been proven exact, whichever way it was made.
"""

import importlib

from qfx.frontends.pytorch import QTracer, freeze

__all__ = ["QTracer", "freeze", "import_onnx", "import_onnx_model"]


def __getattr__(name: str):
    if name in ("import_onnx", "import_onnx_model"):
        return getattr(importlib.import_module("qfx.frontends.onnx"), name)
    raise AttributeError(f"module 'qfx.frontends' has no attribute {name!r}")
