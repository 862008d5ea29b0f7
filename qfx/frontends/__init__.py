"""Frontends: every way a model becomes a frozen integer `Graph`.

- :func:`freeze` (:mod:`qfx.frontends.pytorch`): a trained qfx PyTorch model, traced with torch.fx.
- :func:`import_onnx` (:mod:`qfx.frontends.onnx`): a QONNX graph with power-of-two scales
  (Brevitas, FINN, qfx's own export).

Both build the graph through :mod:`qfx.ir.builder` and hand it to :func:`qfx.ir.verify`, so
every graph a backend sees has been proven exact, whichever way it was made.
"""

from qfx.frontends.onnx import import_onnx, import_onnx_model
from qfx.frontends.pytorch import QTracer, freeze

__all__ = ["QTracer", "freeze", "import_onnx", "import_onnx_model"]
