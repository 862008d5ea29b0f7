"""ONNX interoperability: exact standard-ops export, QONNX export/import.

- :func:`export_onnx`: float64 standard operators; onnxruntime reproduces the frozen executor
  bit for bit (every ap_fixed rounding and overflow mode is composed from exact operators).
- :func:`export_qonnx`: QONNX ``Quant`` nodes with power-of-two scales, as FINN and hls4ml read
  them; exact under the ``qonnx`` executor (float32) within the limits it documents.
- :func:`import_onnx`: QONNX graphs with power-of-two scales (e.g. Brevitas exports) into a
  frozen qfx graph; anything not representable exactly is refused with the node and reason.
"""

from qfx.backends.onnx._common import OnnxExportError
from qfx.backends.onnx.export import build_onnx_model, export_onnx, run_onnx
from qfx.backends.onnx.qonnx_export import build_qonnx_model, export_qonnx

__all__ = ["OnnxExportError", "build_onnx_model", "build_qonnx_model",
           "export_onnx", "export_qonnx", "run_onnx"]
