"""HLS backend: Vitis/Vivado HLS projects (C++, Tcl, block design, driver) for a board."""

from qfx.backends.hls.export import export_hls

__all__ = ["export_hls"]
