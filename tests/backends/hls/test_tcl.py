"""The generated Tcl: ``build_prj.tcl`` (Vitis/Vivado HLS) and ``vivado_bd.tcl`` (block design).

THESE TESTS DO NOT RUN VIVADO OR VITIS HLS. They check (a) that every rendered script parses in
``tclsh`` (``info complete``) and (b) that, run by ``tclsh`` against the stand-ins in
``tcl_standin/`` -- procs named like the tool commands that record each call and return
plausible values -- the scripts issue the right commands in the right order with the board's
part, the clock period and the top name, skip the steps that are switched off, and call nothing
the stand-ins do not know (an ``unknown`` handler records such calls). Whether Vivado accepts
every option is only proven by running Vivado.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pytest

from qfx.backends.hls.boards import list_boards, load_board
from qfx.backends.hls.tcl import (
    BUILD_TCL_TEMPLATE,
    _environment,
    clock_period_ns,
    hls_ip_repo,
    render_block_design_tcl,
    render_build_tcl,
)
from qfx.ir.verify import check_identifier
from qfx.package_data import resource_dir

TCLSH = shutil.which("tclsh")

STANDIN = Path(__file__).resolve().parent / "tcl_standin"
SEP = "\x1f"
NAME, TOP = "digits", "digits_top"
SOURCES = ["firmware/digits.cpp", "firmware/weights/w1.h"]
TB_SOURCES = ["tb/tb_digits.cpp", "tb/vectors"]
TB_ARGS = ["vectors/input.dat", "vectors/output.dat"]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: list[list[str]]

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def find(self, name: str) -> list[list[str]]:
        return [c for c in self.calls if c[0] == name]

    def index(self, name: str, *contains: str) -> int:
        for i, call in enumerate(self.calls):
            if call[0] == name and all(any(s in a for a in call[1:]) for s in contains):
                return i
        raise AssertionError(f"no call {name} {contains} in {self.names()}")

    @property
    def unknown(self) -> list[list[str]]:
        return self.find("UNKNOWN")


def _project(tmp_path: Path) -> Path:
    """An exported-project directory with the files the build script adds."""
    root = tmp_path / "project"
    for rel in SOURCES + ["tb/tb_digits.cpp"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("// stand-in source\n")
    (root / "tb" / "vectors").mkdir(parents=True, exist_ok=True)
    return root


def _write_build(root: Path, board: str = "ultra96", **kwargs: object) -> Path:
    kwargs.setdefault("sources", SOURCES)
    kwargs.setdefault("tb_sources", TB_SOURCES)
    kwargs.setdefault("tb_args", TB_ARGS)
    script = root / "build_prj.tcl"
    script.write_text(render_build_tcl(NAME, TOP, board, **kwargs))  # type: ignore[arg-type]
    return script


def _write_bd(root: Path, board: str = "ultra96", **kwargs: object) -> Path:
    script = root / "vivado_bd.tcl"
    script.write_text(render_block_design_tcl(NAME, TOP, board, **kwargs))  # type: ignore[arg-type]
    return script


def _tclsh() -> str:
    # A missing tclsh is a broken test machine, not a reason to pass: .ci/run installs it.
    assert TCLSH is not None, "tclsh is not installed (apt-get install tcl)"
    return TCLSH


def _run(tool: str, script: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    log = script.parent / f"{tool}.{len(list(script.parent.glob('*.log')))}.log"
    proc = subprocess.run(
        [_tclsh(), str(STANDIN / "run.tcl"), tool, str(log), str(script), *args],
        cwd=script.parent.parent, capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )
    lines = log.read_text().splitlines() if log.exists() else []
    return Run(proc.returncode, proc.stdout, proc.stderr, [ln.split(SEP) for ln in lines])


def _export_ip(root: Path, board: str = "ultra96") -> None:
    """Run build_prj.tcl on the HLS stand-in so that it leaves the IP's component.xml."""
    run = _run("vitis_hls", _write_build(root, board), "csim=0")
    assert run.returncode == 0, run.stderr
    assert (root / hls_ip_repo(NAME) / "component.xml").is_file()


# -- (a) parsing -----------------------------------------------------------------------------------


def test_rendered_scripts_parse_in_tclsh_for_every_board(tmp_path: Path) -> None:
    paths = []
    for board in list_boards():
        d = tmp_path / board.name
        d.mkdir()
        (d / "build_prj.tcl").write_text(
            render_build_tcl(NAME, TOP, board, sources=SOURCES, tb_sources=TB_SOURCES,
                             tb_args=TB_ARGS, clock_uncertainty="12.5%")
        )
        (d / "vivado_bd.tcl").write_text(render_block_design_tcl(NAME, TOP, board))
        paths += [d / "build_prj.tcl", d / "vivado_bd.tcl"]
    proc = subprocess.run(
        [_tclsh(), str(STANDIN / "check_complete.tcl"), *map(str, paths)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.count(": complete") == len(paths)


def test_parse_check_detects_an_incomplete_script(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tcl"
    broken.write_text("if {1} {\n    puts hello\n")
    proc = subprocess.run(
        [_tclsh(), str(STANDIN / "check_complete.tcl"), str(broken)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1 and "incomplete" in proc.stdout


# -- (b) build_prj.tcl on the HLS stand-in ---------------------------------------------------------


def test_build_script_default_steps_in_order(tmp_path: Path) -> None:
    root = _project(tmp_path)
    run = _run("vitis_hls", _write_build(root))
    assert run.returncode == 0, run.stderr
    assert run.unknown == []
    assert run.names() == [
        "open_project", "set_top", "add_files", "add_files", "add_files", "add_files",
        "open_solution", "set_part", "create_clock", "csim_design", "csynth_design",
        "export_design", "exit",
    ]
    assert run.calls[0] == ["open_project", "-reset", "digits_prj"]
    assert run.calls[1] == ["set_top", TOP]
    cflags = f"-std=c++14 -I{root / 'firmware'}"
    assert run.calls[2] == ["add_files", "firmware/digits.cpp", "-cflags", cflags]
    assert run.calls[3] == ["add_files", "firmware/weights/w1.h", "-cflags", cflags]
    assert run.calls[4] == ["add_files", "-tb", "tb/tb_digits.cpp", "-cflags", cflags]
    assert run.calls[5] == ["add_files", "-tb", "tb/vectors"]
    assert run.calls[6] == ["open_solution", "-reset", "-flow_target", "vivado", "solution1"]
    assert run.calls[7] == ["set_part", "xczu3eg-sbva484-1-i"]
    assert run.calls[8] == ["create_clock", "-period", "5", "-name", "default"]
    assert run.calls[9] == ["csim_design", "-clean", "-argv", " ".join(TB_ARGS)]
    assert run.calls[11] == ["export_design", "-rtl", "verilog", "-format", "ip_catalog"]
    assert run.calls[-1] == ["exit", "0"]
    # what the stand-in tool leaves behind, where the block-design script will look for it
    assert (root / "digits_prj/solution1/syn/report/digits_top_csynth.rpt").is_file()
    assert (root / hls_ip_repo(NAME) / "component.xml").is_file()


@pytest.mark.parametrize("board", ["ultra96v1", "pynq-z2", "zcu104", "kv260"])
def test_build_script_uses_each_boards_part_and_clock(tmp_path: Path, board: str) -> None:
    root = _project(tmp_path)
    b = load_board(board)
    run = _run("vitis_hls", _write_build(root, board), "csim=0", "export=0")
    assert run.returncode == 0, run.stderr
    assert run.find("set_part") == [["set_part", b.part]]
    period = f"{1000 / b.clock_mhz:g}"
    assert run.find("create_clock") == [["create_clock", "-period", period, "-name", "default"]]
    assert run.unknown == []


@pytest.mark.parametrize(
    ("mhz", "period"), [(250, "4"), (300, "3.33333"), (142.857, "7.00001"), (100, "10")]
)
def test_clock_override_sets_the_period(tmp_path: Path, mhz: float, period: str) -> None:
    root = _project(tmp_path)
    run = _run("vitis_hls", _write_build(root, clock_mhz=mhz, clock_uncertainty="0.5"), "csim=0")
    assert run.returncode == 0, run.stderr
    assert run.find("create_clock") == [["create_clock", "-period", period, "-name", "default"]]
    assert run.index("set_clock_uncertainty", "0.5") == run.index("create_clock") + 1
    assert float(period) == pytest.approx(clock_period_ns(mhz), rel=1e-5)


def test_build_script_switches(tmp_path: Path) -> None:
    root = _project(tmp_path)
    script = _write_build(root)
    run = _run("vitis_hls", script, "csim=0", "synth=1", "cosim=1", "export=0")
    assert run.returncode == 0, run.stderr
    names = run.names()
    assert "csim_design" not in names and "export_design" not in names
    assert names.index("csynth_design") < names.index("cosim_design")
    assert run.find("cosim_design") == [
        ["cosim_design", "-rtl", "verilog", "-trace_level", "none", "-argv", " ".join(TB_ARGS)]
    ]
    # reopen the synthesized project and only co-simulate: no reset, no re-adding files
    run = _run("vitis_hls", script, "reset=0", "csim=0", "synth=0", "cosim=1", "export=0")
    assert run.returncode == 0, run.stderr
    assert run.names() == [
        "open_project", "set_top", "open_solution", "set_part", "create_clock", "cosim_design",
        "exit",
    ]
    assert run.calls[0] == ["open_project", "digits_prj"]
    assert run.calls[2] == ["open_solution", "-flow_target", "vivado", "solution1"]
    # everything off: the project is still set up, no step runs
    run = _run("vitis_hls", script, "csim=0", "synth=0", "cosim=0", "export=0")
    assert run.returncode == 0, run.stderr
    assert not {"csim_design", "csynth_design", "cosim_design", "export_design"} & set(
        run.names()
    )


def test_build_script_under_vivado_hls_falls_back_without_flow_target(tmp_path: Path) -> None:
    root = _project(tmp_path)
    script = _write_build(root)
    run = _run("vivado_hls", script, "csim=0")
    assert run.returncode == 0, run.stderr
    assert run.find("open_solution") == [
        ["open_solution", "-reset", "-flow_target", "vivado", "solution1"],  # rejected
        ["open_solution", "-reset", "solution1"],
    ]
    assert "does not take -flow_target" in run.stdout
    run = _run("vivado_hls", script, "csim=0", "flow_target=none")
    assert run.returncode == 0, run.stderr
    assert run.find("open_solution") == [["open_solution", "-reset", "solution1"]]
    run = _run("vivado_hls", script, "csim=0", "flow_target=vivado")
    assert run.returncode == 1 and "unknown option -flow_target" in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["csim=2"], "csim=2: the value must be 0 or 1"),
        (["turbo=1"], "unknown argument 'turbo'; allowed: cosim, csim, csim_arith, export, "
                      "flow_target, reset"),
        (["csim"], "bad argument 'csim': expected key=value"),
        (["flow_target=vitis"], "flow_target=vitis: allowed: auto, vivado, none"),
        (["synth=0", "export=1"], "need a synthesized design: pass synth=1, or reset=0"),
        (["reset=0"], "reset=0 but there is no HLS project"),
    ],
)
def test_build_script_rejects_bad_arguments(
    tmp_path: Path, args: list[str], message: str
) -> None:
    root = _project(tmp_path)
    run = _run("vitis_hls", _write_build(root), *args)
    assert run.returncode == 1
    assert message in run.stderr
    assert "open_project" not in run.names()  # rejected before touching the tool


def test_build_script_without_testbench(tmp_path: Path) -> None:
    root = _project(tmp_path)
    script = _write_build(root, tb_sources=[], tb_args=[], csim=False, cosim=False)
    run = _run("vitis_hls", script)
    assert run.returncode == 0, run.stderr
    assert [c for c in run.find("add_files") if "-tb" in c] == []
    assert "csim_design" not in run.names()
    run = _run("vitis_hls", script, "csim=1")
    assert run.returncode == 1 and "need a testbench" in run.stderr


def test_standin_records_commands_it_does_not_know(tmp_path: Path) -> None:
    """The guard behind every `unknown == []` assertion: an unexpected command is recorded."""
    root = _project(tmp_path)
    script = _write_build(root)
    script.write_text(script.read_text().replace("csynth_design\n", "csynth_design\nfrob -x 1\n"))
    run = _run("vitis_hls", script, "csim=0")
    assert run.returncode == 0, run.stderr
    assert run.unknown == [["UNKNOWN", "frob", "-x", "1"]]
    # and a Vivado command in the HLS script is unknown to the HLS stand-in
    script.write_text(script.read_text().replace("frob -x 1\n", "create_bd_design d\n"))
    run = _run("vitis_hls", script, "csim=0")
    assert run.unknown == [["UNKNOWN", "create_bd_design", "d"]]


def test_standin_catches_a_missing_source(tmp_path: Path) -> None:
    root = _project(tmp_path)
    script = _write_build(root, sources=["firmware/missing.cpp"])
    run = _run("vitis_hls", script)
    assert run.returncode == 1
    assert "no such file or directory: firmware/missing.cpp" in run.stderr


# -- (b) vivado_bd.tcl on the Vivado stand-in ------------------------------------------------------


def _assert_in_order(run: Run, *steps: tuple[str, ...]) -> None:
    positions = [run.index(step[0], *step[1:]) for step in steps]
    assert positions == sorted(positions), list(zip(steps, positions, strict=True))


def _dict_of(run: Run, cell: str) -> str:
    """The ``set_property -dict`` list applied to ``cell``."""
    (call,) = [c for c in run.find("set_property") if c[1] == "-dict" and c[3] == cell]
    return call[2]


def test_block_design_for_ultra96(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _export_ip(root)
    board = load_board("ultra96")
    assert board.board_part is not None
    run = _run("vivado", _write_bd(root), env={"STANDIN_BOARD_PARTS": board.board_part})
    assert run.returncode == 0, run.stderr
    assert run.unknown == []
    _assert_in_order(
        run,
        ("create_project", "xczu3eg-sbva484-1-i"),
        ("set_property", "board_part", "avnet.com:ultra96v2:part0:1.2"),
        ("set_property", "ip_repo_paths", str(root / hls_ip_repo(NAME))),
        ("update_ip_catalog",),
        ("create_bd_design", "design_1"),
        ("create_bd_cell", "xilinx.com:ip:zynq_ultra_ps_e:3.5"),
        ("apply_bd_automation", "xilinx.com:bd_rule:zynq_ultra_ps_e", "apply_board_preset 1"),
        ("set_property", "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ 200"),
        ("create_bd_cell", "xilinx.com:ip:axi_dma:7.1"),
        ("create_bd_cell", "xilinx.com:hls:digits_top:1.0", "digits_top_0"),
        ("connect_bd_intf_net", "/axi_dma_0/M_AXIS_MM2S", "/digits_top_0/in_stream"),
        ("connect_bd_intf_net", "/digits_top_0/out_stream", "/axi_dma_0/S_AXIS_S2MM"),
        ("apply_bd_automation", "M_AXI_HPM0_FPD", "/digits_top_0/s_axi_control"),
        ("apply_bd_automation", "M_AXI_HPM0_FPD", "/axi_dma_0/S_AXI_LITE"),
        ("apply_bd_automation", "/axi_dma_0/M_AXI_MM2S", "S_AXI_HP0_FPD"),
        ("apply_bd_automation", "/axi_dma_0/M_AXI_S2MM", "S_AXI_HP0_FPD"),
        ("connect_bd_net", "/irq_concat_0/dout", "/zynq_ultra_ps_e_0/pl_ps_irq0"),
        ("assign_bd_address",),
        ("validate_bd_design",),
        ("make_wrapper", "design_1.bd"),
        ("add_files", "design_1_wrapper.v"),
        ("launch_runs", "impl_1", "write_bitstream"),
        ("wait_on_run", "impl_1"),
    )
    ps_config = _dict_of(run, "/zynq_ultra_ps_e_0")
    assert "CONFIG.PSU__USE__S_AXI_GP2 1" in ps_config
    assert "CONFIG.PSU__SAXIGP2__DATA_WIDTH 128" in ps_config
    assert "CONFIG.PSU__USE__M_AXI_GP0 1" in ps_config
    dma = _dict_of(run, "/axi_dma_0")
    assert "CONFIG.c_include_mm2s 1" in dma and "CONFIG.c_include_s2mm 1" in dma
    assert "CONFIG.c_m_axi_mm2s_data_width 128" in dma
    assert "CONFIG.c_m_axis_mm2s_tdata_width 128" in dma
    assert run.find("launch_runs") == [
        ["launch_runs", "impl_1", "-to_step", "write_bitstream", "-jobs", "4"]
    ]
    # the PYNQ overlay pair, next to the project
    assert (root / "digits.bit").read_text().startswith("stand-in bitstream for xczu3eg")
    assert (root / "digits.hwh").is_file()


def test_block_design_for_pynq_z2_uses_the_zynq7000_ps(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _export_ip(root, "pynq-z2")
    script = _write_bd(root, "pynq-z2", axis_in_width=32, axis_out_width=16)
    env = {"STANDIN_BOARD_PARTS": "tul.com.tw:pynq-z2:part0:1.0"}
    run = _run("vivado", script, "jobs=2", env=env)
    assert run.returncode == 0, run.stderr
    assert run.unknown == []
    assert run.index("create_project", "xc7z020clg400-1") == 0
    auto = run.find("apply_bd_automation")[0]
    assert auto[2] == "xilinx.com:bd_rule:processing_system7"
    assert auto[4] == (
        "make_external {FIXED_IO, DDR} Master Disable Slave Disable apply_board_preset 1"
    )
    ps_config = _dict_of(run, "/processing_system7_0")
    assert "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ 100" in ps_config
    assert "CONFIG.PCW_USE_S_AXI_HP0 1" in ps_config
    assert "CONFIG.PCW_S_AXI_HP0_DATA_WIDTH 64" in ps_config
    dma = _dict_of(run, "/axi_dma_0")
    assert "CONFIG.c_m_axi_mm2s_data_width 64" in dma
    assert "CONFIG.c_m_axis_mm2s_tdata_width 32" in dma
    assert "CONFIG.c_s_axis_s2mm_tdata_width 16" in dma
    run.index("apply_bd_automation", "/processing_system7_0/M_AXI_GP0", "/axi_dma_0/S_AXI_LITE")
    run.index("connect_bd_net", "/irq_concat_0/dout", "/processing_system7_0/IRQ_F2P")
    assert run.find("launch_runs")[0][-2:] == ["-jobs", "2"]


def test_block_design_for_kv260_sets_the_carrier_connection(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _export_ip(root, "kv260")
    run = _run(
        "vivado", _write_bd(root, "kv260", clock_mhz=250),
        env={"STANDIN_BOARD_PARTS": "xilinx.com:kv260_som:part0:1.3"},
    )
    assert run.returncode == 0, run.stderr
    _assert_in_order(
        run,
        ("create_project", "xck26-sfvc784-2LV-c"),
        ("set_property", "board_part", "xilinx.com:kv260_som:part0:1.3"),
        ("set_property", "board_connections",
         "som240_1_connector xilinx.com:kv260_carrier:som240_1_connector:1.3"),
        ("set_property", "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ 250"),
    )
    assert run.unknown == []


def test_block_design_without_board_files(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _export_ip(root)
    script = _write_bd(root)
    run = _run("vivado", script)  # no board parts installed
    assert run.returncode == 0, run.stderr
    assert [c for c in run.find("set_property") if c[1] == "board_part"] == []
    assert run.find("apply_bd_automation")[0][4] == "apply_board_preset 0"
    assert "board files of avnet.com:ultra96v2:part0:1.2 are not installed" in run.stdout
    run = _run("vivado", script, "board_files=require")
    assert run.returncode == 1 and "are not installed (board_files=require)" in run.stderr
    env = {"STANDIN_BOARD_PARTS": "avnet.com:ultra96v2:part0:1.2"}
    run = _run("vivado", script, "board_files=off", env=env)
    assert run.returncode == 0 and "get_board_parts" not in run.names()


def test_block_design_needs_the_exported_ip(tmp_path: Path) -> None:
    root = _project(tmp_path)
    run = _run("vivado", _write_bd(root))
    assert run.returncode == 1
    assert "IP xilinx.com:hls:digits_top:1.0 not found" in run.stderr
    assert "build_prj.tcl -tclargs synth=1 export=1" in run.stderr
    assert "create_bd_design" not in run.names()


def test_block_design_ip_repo_argument(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _export_ip(root)
    moved = root / "ip_elsewhere"
    shutil.move(str(root / hls_ip_repo(NAME)), moved)
    run = _run("vivado", _write_bd(root), "ip_repo=ip_elsewhere", "bitstream=0")
    assert run.returncode == 0, run.stderr
    assert run.find("set_property")[0][1:3] == ["ip_repo_paths", str(moved)]
    assert "launch_runs" not in run.names() and "make_wrapper" in run.names()
    assert not (root / "digits.bit").exists()


def test_block_design_finds_or_names_the_ip_interfaces(tmp_path: Path) -> None:
    root = _project(tmp_path)
    _export_ip(root)
    two_inputs = "{a axis Slave} {b axis Slave} {y axis Master} {s_axi_control aximm Slave}"
    env = {"STANDIN_IP_INTERFACES": two_inputs}
    run = _run("vivado", _write_bd(root), env=env)
    assert run.returncode == 1
    assert "expected exactly one Slave axis interface on /digits_top_0, found 2" in run.stderr
    run = _run("vivado", _write_bd(root, in_port="b"), env=env)
    assert run.returncode == 0, run.stderr
    run.index("connect_bd_intf_net", "/axi_dma_0/M_AXIS_MM2S", "/digits_top_0/b")
    run = _run("vivado", _write_bd(root, in_port="nope"), env=env)
    assert run.returncode == 1 and "/digits_top_0 has no interface 'nope'" in run.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STANDIN_IMPL_FAIL": "1"}, "implementation did not finish"),
        ({"STANDIN_NO_HWH": "1"}, "no hardware handoff design_1.hwh"),
    ],
)
def test_block_design_reports_missing_outputs(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    root = _project(tmp_path)
    _export_ip(root)
    run = _run("vivado", _write_bd(root), env=env)
    assert run.returncode == 1 and message in run.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["jobs=0"], "jobs=0: the value must be a positive integer"),
        (["bitstream=yes"], "bitstream=yes: the value must be 0 or 1"),
        (["board_files=maybe"], "board_files=maybe: allowed: auto, require, off"),
        (["speed=1"], "unknown argument 'speed'; allowed: bitstream, board_files, ip_repo, jobs"),
    ],
)
def test_block_design_rejects_bad_arguments(
    tmp_path: Path, args: list[str], message: str
) -> None:
    root = _project(tmp_path)
    run = _run("vivado", _write_bd(root), *args)
    assert run.returncode == 1 and message in run.stderr
    assert run.names() == ["ERROR"]


# -- Python-side validation ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ['a;system("x")', "1top", "top name", "top$", "", "tóp"])
def test_names_reaching_tcl_must_be_identifiers(bad: str) -> None:
    with pytest.raises(ValueError, match=r"is not a C\+\+ identifier \(it must match"):
        render_build_tcl(NAME, bad, "ultra96", sources=SOURCES, tb_sources=TB_SOURCES)
    with pytest.raises(ValueError, match=r"project_name .* is not a C\+\+ identifier"):
        render_block_design_tcl(bad, TOP, "ultra96")
    with pytest.raises(ValueError, match=r"in_port .* is not a C\+\+ identifier"):
        render_block_design_tcl(NAME, TOP, "ultra96", in_port=bad)
    assert check_identifier("_ok9", "top") == "_ok9"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sources": ["../etc/passwd"]}, "must match [A-Za-z0-9_.+-]+ and not be '..'"),
        ({"sources": ["/abs/top.cpp"]}, "must be a relative POSIX path"),
        ({"sources": ["fw/[exec rm].cpp"]}, "each path component must match"),
        ({"sources": "firmware/top.cpp"}, "sources must be a sequence of strings"),
        ({"sources": []}, "sources is empty"),
        ({"tb_args": ["$env(HOME)"]}, "tb_arg '$env(HOME)' must be one plain word"),
        ({"tb_args": ["a b"]}, "tb_arg 'a b' must be one plain word"),
        ({"cflags": ["-DX=[pwd]"]}, "cflag '-DX=[pwd]' must be one plain word"),
        ({"clock_mhz": 0}, "clock_mhz must be a number in (0, 1000]"),
        ({"clock_mhz": float("nan")}, "clock_mhz must be a number in (0, 1000]"),
        ({"clock_uncertainty": "1; exit"}, "clock_uncertainty '1; exit' must be ns"),
        ({"tb_sources": []}, "csim/cosim default to on but tb_sources is empty"),
    ],
)
def test_build_render_validation(kwargs: dict, message: str) -> None:
    args = {"sources": SOURCES, "tb_sources": TB_SOURCES, **kwargs}
    with pytest.raises(ValueError) as info:
        render_build_tcl(NAME, TOP, "ultra96", **args)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"axis_in_width": 24}, "axis_in_width 24 is not an AXI DMA stream width; allowed: 8, 16"),
        ({"axis_out_width": 2048}, "axis_out_width 2048 is not an AXI DMA stream width"),
        ({"ip_repo": "../ip"}, "ip_repo '../ip'"),
        ({"jobs": 0}, "jobs must be a positive int"),
        ({"clock_mhz": -5}, "clock_mhz must be a number in (0, 1000]"),
    ],
)
def test_block_design_render_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        render_block_design_tcl(NAME, TOP, "ultra96", **kwargs)
    assert message in str(info.value)


def test_wide_streams_widen_the_dma_memory_map() -> None:
    tcl = render_block_design_tcl(NAME, TOP, "ultra96", axis_in_width=256, axis_out_width=8)
    assert "CONFIG.c_m_axi_mm2s_data_width {256}" in tcl
    assert "CONFIG.c_m_axis_mm2s_tdata_width {256}" in tcl
    assert "CONFIG.c_s_axis_s2mm_tdata_width {8}" in tcl


def test_unknown_board_reaches_the_caller() -> None:
    with pytest.raises(ValueError, match="unknown board 'nexys'; known boards: kv260"):
        render_build_tcl(NAME, TOP, "nexys", sources=SOURCES, tb_sources=TB_SOURCES)


def test_templates_use_strict_undefined() -> None:
    env = _environment(str(resource_dir("hls_templates")))
    assert env.undefined is jinja2.StrictUndefined
    with pytest.raises(jinja2.UndefinedError):
        env.get_template(BUILD_TCL_TEMPLATE).render()


def test_build_script_csim_arith_adds_the_synthesis_arithmetic(tmp_path: Path) -> None:
    """csim_arith=synth puts -DQFX_AP_ARITH into every C source's and the testbench's cflags, so
    csim_design runs the ap_fixed arithmetic that csynth_design compiles; native (the default)
    does not; anything else is refused."""
    root = _project(tmp_path)
    script = _write_build(root)
    text = script.read_text()
    assert "csim_arith  native" in text and "lappend qfx_cflags -DQFX_AP_ARITH" in text

    def cflags(run: Run) -> list[str]:
        return [c[c.index("-cflags") + 1] for c in run.find("add_files") if "-cflags" in c]

    run = _run("vitis_hls", script, "synth=0", "export=0")
    assert run.returncode == 0, run.stderr
    assert cflags(run) and not any("QFX_AP_ARITH" in f for f in cflags(run))
    assert "qfx: C simulation (native arithmetic)" in run.stdout
    run = _run("vitis_hls", script, "csim_arith=synth", "synth=1", "export=0")
    assert run.returncode == 0, run.stderr
    flags = cflags(run)
    assert len(flags) == 3 and all("-DQFX_AP_ARITH" in f.split() for f in flags)
    assert "qfx: C simulation (synth arithmetic)" in run.stdout
    assert run.names().index("csim_design") < run.names().index("csynth_design")
    run = _run("vitis_hls", script, "csim_arith=fast")
    assert run.returncode != 0 and "csim_arith=fast: allowed: native, synth" in run.stderr
    # the default can be the synthesis arithmetic
    script = _write_build(root, csim_arith="synth")
    assert "csim_arith  synth" in script.read_text()
    with pytest.raises(ValueError, match="csim_arith"):
        render_build_tcl(NAME, TOP, "ultra96", sources=SOURCES, tb_sources=TB_SOURCES,
                         csim_arith="both")
