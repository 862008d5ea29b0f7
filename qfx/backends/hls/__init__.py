"""HLS backend: Vitis/Vivado HLS projects (C++, Tcl, block design, driver) for a board."""
