"""Render the project-level Tcl of an exported HLS project.

Two scripts, both Jinja templates in ``hls_templates/`` rendered with ``StrictUndefined``:

* ``build_prj.tcl`` (:func:`render_build_tcl`): the Vitis HLS / Vivado HLS project — open the
  project, add sources and testbench, set part and clock, then C simulation, C synthesis,
  C/RTL co-simulation and IP export, each switchable at run time::

      vitis_hls -f build_prj.tcl -tclargs csim=1 synth=1 cosim=0 export=1

* ``vivado_bd.tcl`` (:func:`render_block_design_tcl`): the Vivado block design for the board —
  Zynq PS with board presets, AXI DMA, the exported HLS IP, AXI-Lite control, address map,
  wrapper, implementation and bitstream, with the ``.bit``/``.hwh`` pair copied next to the
  project for PYNQ::

      vivado -mode batch -source vivado_bd.tcl -tclargs jobs=8

Everything that reaches Tcl from Python is validated first: ``project_name``, ``top`` and port
names must be identifiers (``[A-Za-z_][A-Za-z0-9_]*``), paths must be relative paths of plain
characters, flags and testbench arguments must be single plain words, so no value can inject Tcl.

Example:
    >>> from qfx.backends.hls.tcl import render_build_tcl
    >>> tcl = render_build_tcl("digits", "digits_top", "ultra96", sources=["firmware/top.cpp"],
    ...                        tb_sources=["tb/tb.cpp"])
    >>> "set_part xczu3eg-sbva484-1-i" in tcl, "create_clock -period 5 -name default" in tcl
    (True, True)
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import jinja2

from qfx.backends.hls.boards import Board, load_board
from qfx.ir.verify import check_identifier
from qfx.package_data import resource_dir

__all__ = [
    "BD_NAME",
    "BUILD_TCL_TEMPLATE",
    "BLOCK_DESIGN_TCL_TEMPLATE",
    "HLS_SOLUTION",
    "clock_period_ns",
    "hls_ip_repo",
    "hls_project_dir",
    "render_block_design_tcl",
    "render_build_tcl",
]

#: Names that reach Tcl (and C++) as identifiers must match this.
#: Name of the HLS solution the build script creates.
HLS_SOLUTION = "solution1"
#: Name of the Vivado block design.
BD_NAME = "design_1"
#: Template file names inside ``hls_templates/``.
BUILD_TCL_TEMPLATE = "build_prj.tcl.j2"
BLOCK_DESIGN_TCL_TEMPLATE = "vivado_bd.tcl.j2"

# A relative path of plain characters: no absolute paths, no "..", nothing Tcl would expand.
_PATH_PART_RE = re.compile(r"[A-Za-z0-9_.+-]+")
# One plain word (a compiler flag or a testbench argument): no whitespace and no Tcl specials.
_WORD_RE = re.compile(r"[A-Za-z0-9_.,:=+/@%-]+")
_CLOCK_UNCERTAINTY_RE = re.compile(r"[0-9]+(\.[0-9]+)?%?")
_C_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".hxx")
_AXIS_WIDTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
_DMA_MM_WIDTHS = (32, 64, 128, 256, 512, 1024)


def clock_period_ns(clock_mhz: float) -> float:
    """The clock period in nanoseconds for a clock in MHz (``1000 / clock_mhz``).

    Example:
        >>> clock_period_ns(200)
        5.0
    """
    if (
        isinstance(clock_mhz, bool)
        or not isinstance(clock_mhz, (int, float))
        or not math.isfinite(clock_mhz)
        or not 0 < clock_mhz <= 1000
    ):
        raise ValueError(f"clock_mhz must be a number in (0, 1000], got {clock_mhz!r}")
    return 1000.0 / clock_mhz


def hls_project_dir(project_name: str) -> str:
    """The HLS project directory ``build_prj.tcl`` creates, relative to the exported project.

    Example:
        >>> hls_project_dir("digits")
        'digits_prj'
    """
    return f"{check_identifier(project_name, 'project_name')}_prj"


def hls_ip_repo(project_name: str) -> str:
    """Where ``export_design`` writes the IP, relative to the exported project.

    Example:
        >>> hls_ip_repo("digits")
        'digits_prj/solution1/impl/ip'
    """
    return f"{hls_project_dir(project_name)}/{HLS_SOLUTION}/impl/ip"


def render_build_tcl(
    project_name: str,
    top: str,
    board: Board | str,
    clock_mhz: float | None = None,
    sources: Sequence[str] = (),
    tb_sources: Sequence[str] = (),
    tb_args: Sequence[str] = (),
    *,
    include_dirs: Sequence[str] = ("firmware",),
    cflags: Sequence[str] = ("-std=c++14",),
    tb_cflags: Sequence[str] | None = None,
    clock_uncertainty: str | None = None,
    csim: bool = True,
    synth: bool = True,
    cosim: bool = False,
    export: bool = True,
    csim_arith: str = "native",
) -> str:
    """Render ``build_prj.tcl``, the Vitis HLS / Vivado HLS script of an exported project.

    Args:
        project_name: identifier; the HLS project directory is ``<project_name>_prj``.
        top: identifier of the top function (``set_top``); the exported IP's VLNV is
            ``xilinx.com:hls:<top>:1.0``.
        board: a :class:`Board` or a board name/alias/YAML path (see :func:`load_board`).
        clock_mhz: target clock; ``None`` uses the board's default.
        sources: synthesizable sources, relative to the project directory (at least one).
        tb_sources: testbench sources and data (``add_files -tb``); data files are copied into
            the simulation directory, so testbench arguments may name them relatively.
        tb_args: arguments of the testbench's ``main`` (``csim_design``/``cosim_design -argv``).
        include_dirs: directories (relative to the project) added as ``-I`` to every C source.
        cflags: extra compiler flags for the sources; ``tb_cflags`` for the testbench
            (``None``: the same as ``cflags``).
        clock_uncertainty: ``set_clock_uncertainty`` value, in ns (``"0.5"``) or percent
            (``"12.5%"``); ``None`` keeps the tool default.
        csim, synth, cosim, export: the defaults of the script's run-time step switches.
        csim_arith: default of the script's ``csim_arith`` argument: ``"native"`` (the
            firmware's native-integer C-sim path) or ``"synth"`` (``-DQFX_AP_ARITH`` in the
            sources' cflags, so that ``csim_design`` runs the ap_fixed arithmetic that
            ``csynth_design`` compiles).

    Raises:
        ValueError: a name is not an identifier, a path is absolute/contains ``..``/has special
            characters, a flag or argument is not a plain word, the clock is out of range, there
            are no sources, or csim/cosim default on without a testbench.

    Example:
        >>> tcl = render_build_tcl("p", "p_top", "pynq-z2", clock_mhz=125,
        ...                        sources=["firmware/p.cpp"], tb_sources=["tb/tb.cpp"])
        >>> "create_clock -period 8 -name default" in tcl
        True
    """
    board = load_board(board)
    check_identifier(project_name, "project_name")
    check_identifier(top, "top")
    clock = board.clock_mhz if clock_mhz is None else clock_mhz
    period = clock_period_ns(clock)
    sources = [_check_path(s, "source") for s in _as_list(sources, "sources")]
    tb_sources = [_check_path(s, "tb_source") for s in _as_list(tb_sources, "tb_sources")]
    tb_args = [_check_word(a, "tb_arg") for a in _as_list(tb_args, "tb_args")]
    include_dirs = [_check_path(d, "include_dir") for d in _as_list(include_dirs, "include_dirs")]
    cflags = [_check_word(f, "cflag") for f in _as_list(cflags, "cflags")]
    tb_cflags = (
        cflags if tb_cflags is None
        else [_check_word(f, "tb_cflag") for f in _as_list(tb_cflags, "tb_cflags")]
    )
    if not sources:
        raise ValueError("sources is empty: the HLS project needs at least one source file")
    if csim_arith not in ("native", "synth"):
        raise ValueError(f"csim_arith must be 'native' or 'synth', got {csim_arith!r}")
    if not tb_sources and (csim or cosim):
        raise ValueError("csim/cosim default to on but tb_sources is empty: pass a testbench")
    if clock_uncertainty is not None and not (
        isinstance(clock_uncertainty, str) and _CLOCK_UNCERTAINTY_RE.fullmatch(clock_uncertainty)
    ):
        raise ValueError(
            f"clock_uncertainty {clock_uncertainty!r} must be ns like '0.5' or percent like '12.5%'"
        )
    return _render(
        BUILD_TCL_TEMPLATE,
        project_name=project_name,
        top=top,
        board=board,
        clock_mhz=_num(clock),
        period_ns=_num(period),
        hls_project=hls_project_dir(project_name),
        solution=HLS_SOLUTION,
        ip_repo=hls_ip_repo(project_name),
        sources=[(s, s.lower().endswith(_C_SUFFIXES)) for s in sources],
        tb_sources=[(s, s.lower().endswith(_C_SUFFIXES)) for s in tb_sources],
        tb_args=tb_args,
        include_dirs=include_dirs,
        cflags=cflags,
        tb_cflags=tb_cflags,
        clock_uncertainty=clock_uncertainty,
        defaults={
            "reset": 1, "csim": int(bool(csim)), "synth": int(bool(synth)),
            "cosim": int(bool(cosim)), "export": int(bool(export)), "csim_arith": csim_arith,
        },
    )


def render_block_design_tcl(
    project_name: str,
    top: str,
    board: Board | str,
    clock_mhz: float | None = None,
    *,
    ip_repo: str | None = None,
    axis_in_width: int | None = None,
    axis_out_width: int | None = None,
    in_port: str | None = None,
    out_port: str | None = None,
    ctrl_port: str | None = None,
    jobs: int = 4,
    bitstream: bool = True,
) -> str:
    """Render ``vivado_bd.tcl``: the Vivado block design and bitstream for the exported IP.

    The design: the board's PS with board presets (when the board files are installed), its PL
    clock 0 at ``clock_mhz``; an AXI DMA (no scatter-gather, MM2S and S2MM, memory-map width
    from the board) whose MM2S stream feeds the IP's AXI-Stream input and whose S2MM stream
    takes the IP's output; AXI-Lite control of the IP and the DMA from the PS master port, the
    DMA's memory traffic into the PS slave port; DMA interrupts to the PS; then addresses,
    validation, wrapper, ``impl_1`` to ``write_bitstream``, and ``<project_name>.bit`` /
    ``<project_name>.hwh`` copied next to the script for PYNQ.

    Args:
        project_name: identifier; the Vivado project is ``<project_name>_vivado``.
        top: identifier of the HLS top; the IP is ``xilinx.com:hls:<top>:1.0``.
        board: a :class:`Board` or a board name/alias/YAML path.
        clock_mhz: PL clock; ``None`` uses the board's default (use the HLS clock).
        ip_repo: IP repository relative to the project directory; ``None`` is where
            ``build_prj.tcl`` exports it (:func:`hls_ip_repo`).
        axis_in_width, axis_out_width: TDATA widths (bits) of the IP's input and output streams,
            one of 8..1024 (powers of two); ``None`` uses the board's DMA width.
        in_port, out_port, ctrl_port: names of the IP's AXI-Stream input, output and AXI-Lite
            interfaces; ``None`` finds the single one of each kind at Vivado run time.
        jobs, bitstream: defaults of the script's run-time ``jobs=``/``bitstream=`` switches.

    Raises:
        ValueError: a name is not an identifier, a width is not supported, ``ip_repo`` is not a
            plain relative path, or ``jobs`` is not a positive int.

    Example:
        >>> tcl = render_block_design_tcl("digits", "digits_top", "ultra96")
        >>> "xilinx.com:hls:digits_top:1.0" in tcl, "S_AXI_HP0_FPD" in tcl
        (True, True)
    """
    board = load_board(board)
    check_identifier(project_name, "project_name")
    check_identifier(top, "top")
    clock = board.clock_mhz if clock_mhz is None else clock_mhz
    clock_period_ns(clock)  # validates the range
    repo = hls_ip_repo(project_name) if ip_repo is None else _check_path(ip_repo, "ip_repo")
    width_in = _axis_width(board.dma_data_width if axis_in_width is None else axis_in_width, "in")
    width_out = _axis_width(
        board.dma_data_width if axis_out_width is None else axis_out_width, "out"
    )
    mm_width = max(board.dma_data_width, width_in, width_out)
    assert mm_width in _DMA_MM_WIDTHS
    ports = {
        "in": "" if in_port is None else check_identifier(in_port, "in_port"),
        "out": "" if out_port is None else check_identifier(out_port, "out_port"),
        "ctrl": "" if ctrl_port is None else check_identifier(ctrl_port, "ctrl_port"),
    }
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    return _render(
        BLOCK_DESIGN_TCL_TEMPLATE,
        project_name=project_name,
        top=top,
        board=board,
        clock_mhz=_num(clock),
        ip_repo=repo,
        bd_name=BD_NAME,
        ps=_ps_design(board, clock),
        dma={"mm_width": mm_width, "in_width": width_in, "out_width": width_out},
        ports=ports,
        defaults={"jobs": jobs, "bitstream": int(bool(bitstream))},
    )


# -- processing-system specifics -----------------------------------------------------------------

# Zynq UltraScale+: PS-PL AXI ports and the index of their PSU__USE__*_AXI_GP<n> switch.
_ZUPS_MASTERS = {"M_AXI_HPM0_FPD": 0, "M_AXI_HPM1_FPD": 1, "M_AXI_HPM0_LPD": 2}
_ZUPS_SLAVES = {
    "S_AXI_HPC0_FPD": 0, "S_AXI_HPC1_FPD": 1, "S_AXI_HP0_FPD": 2, "S_AXI_HP1_FPD": 3,
    "S_AXI_HP2_FPD": 4, "S_AXI_HP3_FPD": 5, "S_AXI_LPD": 6,
}


def _ps_design(board: Board, clock_mhz: float) -> dict[str, Any]:
    """Cell name, automation rule and CONFIG properties of the board's PS in the block design."""
    mhz = _num(clock_mhz)
    if board.ps == "zynq_ultra_ps_e":
        props = [("CONFIG.PSU__FPGA_PL0_ENABLE", "1"),
                 ("CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ", mhz)]
        props += [
            (f"CONFIG.PSU__USE__M_AXI_GP{i}", "1" if port == board.ps_master_port else "0")
            for port, i in _ZUPS_MASTERS.items()
        ]
        slave = _ZUPS_SLAVES[board.ps_slave_port]
        props += [
            (f"CONFIG.PSU__USE__S_AXI_GP{slave}", "1"),
            (f"CONFIG.PSU__SAXIGP{slave}__DATA_WIDTH", str(board.dma_data_width)),
            ("CONFIG.PSU__USE__IRQ0", "1"),
        ]
        return {
            "ip": "zynq_ultra_ps_e",
            "cell": "zynq_ultra_ps_e_0",
            "rule": "xilinx.com:bd_rule:zynq_ultra_ps_e",
            "automation": [],
            "props": props,
            "irq_pin": "pl_ps_irq0",
            "actual_clock_prop": "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ",
            "master_port": board.ps_master_port,
            "slave_port": board.ps_slave_port,
        }
    if board.ps == "processing_system7":
        index = board.ps_slave_port[-1]  # S_AXI_HP0 .. S_AXI_HP3
        props = [("CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ", mhz)]
        props += [
            (f"CONFIG.PCW_USE_{port}", "1" if port == board.ps_master_port else "0")
            for port in ("M_AXI_GP0", "M_AXI_GP1")
        ]
        props += [
            (f"CONFIG.PCW_USE_S_AXI_HP{index}", "1"),
            (f"CONFIG.PCW_S_AXI_HP{index}_DATA_WIDTH", str(board.dma_data_width)),
            ("CONFIG.PCW_USE_FABRIC_INTERRUPT", "1"),
            ("CONFIG.PCW_IRQ_F2P_INTR", "1"),
        ]
        return {
            "ip": "processing_system7",
            "cell": "processing_system7_0",
            "rule": "xilinx.com:bd_rule:processing_system7",
            "automation": [("make_external", "FIXED_IO, DDR"), ("Master", "Disable"),
                           ("Slave", "Disable")],
            "props": props,
            "irq_pin": "IRQ_F2P",
            "actual_clock_prop": "CONFIG.PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ",
            "master_port": board.ps_master_port,
            "slave_port": board.ps_slave_port,
        }
    raise ValueError(f"unsupported ps {board.ps!r}")  # unreachable: Board validates ps


# -- rendering helpers ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _environment(template_dir: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tclword"] = _tcl_word
    env.filters["tclbrace"] = _tcl_brace
    return env


def _render(template: str, **context: Any) -> str:
    env = _environment(str(resource_dir("hls_templates")))
    return env.get_template(template).render(**context)


def _tcl_word(value: object) -> str:
    """A value as a bare Tcl word; refuses anything Tcl would substitute or split."""
    text = str(value)
    if not _WORD_RE.fullmatch(text):
        raise ValueError(f"{text!r} cannot be written as a plain Tcl word")
    return text


def _tcl_brace(value: object) -> str:
    """A value as a braced Tcl word (spaces allowed; braces, backslashes and newlines are not)."""
    text = str(value)
    if any(c in text for c in "{}\\\n\r"):
        raise ValueError(f"{text!r} cannot be written as a braced Tcl word")
    return "{" + text + "}"


def _as_list(values: Sequence[str], what: str) -> list[str]:
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{what} must be a sequence of strings, not a single string")
    return list(values)


def _check_path(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} {value!r} must be a non-empty relative path")
    path = PurePosixPath(value)
    if path.is_absolute() or "\\" in value:
        raise ValueError(f"{what} {value!r} must be a relative POSIX path (no leading '/')")
    for part in path.parts:
        if part == ".." or not _PATH_PART_RE.fullmatch(part):
            raise ValueError(
                f"{what} {value!r}: each path component must match [A-Za-z0-9_.+-]+ and not be '..'"
            )
    return str(path)


def _check_word(value: str, what: str) -> str:
    if not isinstance(value, str) or not _WORD_RE.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must be one plain word of [A-Za-z0-9_.,:=+/@%-] characters"
        )
    return value


def _axis_width(value: int, which: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in _AXIS_WIDTHS:
        raise ValueError(
            f"axis_{which}_width {value!r} is not an AXI DMA stream width; allowed: "
            f"{', '.join(map(str, _AXIS_WIDTHS))}"
        )
    return value


def _num(value: float) -> str:
    """A number as Tcl/Vivado text: ``5`` for 5.0, ``3.33333`` for 10/3."""
    return f"{float(value):.6g}"
