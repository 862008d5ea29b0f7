"""Backends that turn a frozen qfx model into something else: HLS C++ projects, ONNX."""
