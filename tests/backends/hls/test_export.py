"""`export_hls` / `qfx export`: a complete HLS project for a board, written atomically.

Covers: every file of the project (firmware, tb + vectors, build_prj.tcl with the board's part,
clock and the AXI top, vivado_bd.tcl, driver.py, report.md/json/png, README.md); the report's
numbers are labelled "estimate"; an over-budget model fails atomically and exports with a
warning on request; unknown boards; --force; a hostile module name reaches the generated code
only as an identifier; the PYNQ driver's packing round-trips against qfx.backends.hls.layout and
packs floats exactly as the executor's input node quantizes them (no pynq needed); the CLI.

The Tcl scripts are run by tclsh against the stand-ins in tcl_standin/ (procs that record the
Vitis/Vivado commands): THESE TESTS DO NOT RUN VITIS HLS OR VIVADO. One g++ build runs the
exported testbench in the configuration build_prj.tcl gives csim_design (AXI-Stream top).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import nn

import qfx
import qfx.cli
from qfx.backends.hls import export as hls_export
from qfx.backends.hls.estimate import ResourceReport
from qfx.backends.hls.export import ExportedProject, ResourceBudgetWarning, random_test_vectors
from qfx.backends.hls.layout import axis_unpack, axis_words, read_vectors, wire_order
from qfx.backends.hls.project import HLSProject
from qfx.backends.hls.report import text_environment
from qfx.fixed.fixed_type import OVERFLOW_MODES, ROUNDING_MODES, FixedType
from qfx.flows.api import export_hls  # a model, a graph or a file (the backend: graphs only)
from qfx.ir import run_graph, save_graph
from qfx.nn import (
    QBatchNorm2d,
    QConfig,
    QConv2d,
    QFlatten,
    QInput,
    QLinear,
    QMaxPool2d,
    QReLU,
)

STANDIN = Path(__file__).resolve().parent / "tcl_standin"
SEP = "\x1f"
TEXT_SUFFIXES = {".h", ".cpp", ".tcl", ".py", ".md", ".json", ".txt"}


# ---------------------------------------------------------------------------- models
def _calibrated(net: nn.Module, x: torch.Tensor) -> nn.Module:
    net.train()
    with qfx.calibration(net):
        net(x)
    return net.eval()


@pytest.fixture(scope="module")
def cnn_model() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(3)
    net = nn.Sequential(QInput(8), QConv2d(1, 4, 3, padding=1), QBatchNorm2d(4), QReLU(),
                        QMaxPool2d(2), QFlatten(), QLinear(16, 5))
    x = torch.randn(24, 1, 4, 4) * 2
    return _calibrated(net, x), x


@pytest.fixture(scope="module")
def cnn(cnn_model) -> qfx.Graph:
    net, x = cnn_model
    return qfx.freeze(net, x[:1])


@pytest.fixture(scope="module")
def big() -> qfx.Graph:
    """A dense layer of 4096 16x16-bit multiplications: far over the Ultra96's 360 DSPs."""
    torch.manual_seed(4)
    with qfx.config(QConfig(weight_width=16, act_width=16, input_width=16)):
        net = nn.Sequential(QInput(16), QLinear(64, 64))
    x = torch.randn(32, 64)
    return qfx.freeze(_calibrated(net, x), x[:1])


@pytest.fixture(scope="module")
def exported(cnn, cnn_model, tmp_path_factory) -> ExportedProject:
    _, x = cnn_model
    out = tmp_path_factory.mktemp("exp") / "cnn"
    return export_hls(cnn, out_dir=out, board="ultra96", project_name="cnn",
                      test_vectors=x.numpy(), reuse=2)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _load_driver(path: Path, name: str = "qfx_test_driver") -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------- the files
def test_export_writes_every_file(exported, cnn):
    prj = exported
    root = prj.root
    assert isinstance(prj, ExportedProject) and isinstance(prj, HLSProject)
    for rel in ("firmware/cnn.cpp", "firmware/cnn.h", "firmware/cnn_axis.cpp",
                "firmware/cnn_axis.h", "firmware/parameters.h", "firmware/qfx_layers.h",
                "tb/tb_cnn.cpp", "tb/inputs.txt", "tb/expected.txt", "build_prj.tcl",
                "vivado_bd.tcl", "driver.py", "report.md", "report.json", "report.png",
                "README.md", "project.json", "model.qfx.npz"):
        assert (root / rel).is_file(), rel
    assert list((root / "firmware" / "weights").glob("*.h"))
    # the manifest lists everything and reloads
    manifest = json.loads((root / "project.json").read_text())
    listed = set(manifest["files"])
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert listed == on_disk
    assert manifest["export"]["board"] == "ultra96v2" and manifest["export"]["hls_top"] == \
        "cnn_axis"
    again = HLSProject.load(root)
    assert again.top == "cnn" and again.axis_top == "cnn_axis" and again.reuse == 2
    assert set(again.files) == set(prj.files)
    # the project object knows its board, clock and estimate
    assert prj.board.name == "ultra96v2" and prj.clock_mhz == 200.0
    assert isinstance(prj.report, ResourceReport) and prj.report.reuse == 2
    assert prj.build_tcl.is_file() and prj.driver.is_file() and prj.readme.is_file()
    assert all(p.is_file() for p in prj.report_files.values())
    # vectors: the given inputs in the input type, outputs of the exact executor
    assert read_vectors(prj.input_vectors).shape == (24, 16)
    assert read_vectors(prj.expected_vectors).shape == (24, 5)
    # modes of a plain mkdir/open, not mkdtemp's 0700
    umask = os.umask(0)
    os.umask(umask)
    assert (root.stat().st_mode & 0o777) == 0o777 & ~umask


def test_build_script_has_the_board_part_clock_and_axi_top(exported):
    tcl = exported.build_tcl.read_text()
    assert "set_part xczu3eg-sbva484-1-i" in tcl
    assert "create_clock -period 5 -name default" in tcl
    assert "set qfx_top cnn_axis" in tcl
    assert "add_files firmware/cnn_axis.cpp -cflags $qfx_cflags" in tcl
    assert "add_files firmware/cnn.cpp -cflags $qfx_cflags" in tcl
    assert "add_files -tb tb/tb_cnn.cpp -cflags $qfx_tb_cflags" in tcl
    assert "add_files -tb tb/inputs.txt" in tcl and "add_files -tb tb/expected.txt" in tcl
    assert "-DQFX_TB_AXIS" in tcl  # C simulation and co-simulation drive the AXI top
    assert "-argv {inputs.txt outputs.txt expected.txt}" in tcl
    bd = exported.block_design_tcl.read_text()
    assert "xilinx.com:hls:cnn_axis:1.0" in bd and "xczu3eg-sbva484-1-i" in bd
    w = exported.axis_width
    assert f"CONFIG.c_m_axis_mm2s_tdata_width {{{w}}}" in bd
    assert f"CONFIG.c_s_axis_s2mm_tdata_width {{{w}}}" in bd


def _standin(tool: str, script: Path, *args: str) -> tuple[int, list[list[str]], str]:
    log = script.parent / f".{tool}.log"
    proc = subprocess.run(["tclsh", str(STANDIN / "run.tcl"), tool, str(log), str(script), *args],
                          cwd=script.parent, capture_output=True, text=True, timeout=60)
    calls = [ln.split(SEP) for ln in log.read_text().splitlines()] if log.exists() else []
    log.unlink(missing_ok=True)
    return proc.returncode, calls, proc.stderr


def test_tcl_scripts_issue_the_tool_commands_in_order_on_the_standins(exported, tmp_path):
    """NOT Vitis/Vivado: tclsh runs the scripts against recording stand-ins."""
    assert shutil.which("tclsh"), "tclsh is not installed (apt-get install tcl; .ci/run does)"
    root = tmp_path / "prj"
    shutil.copytree(exported.root, root)
    rc, calls, err = _standin("vitis_hls", root / "build_prj.tcl", "csim=1", "synth=1",
                              "export=1")
    assert rc == 0, err
    names = [c[0] for c in calls]
    assert "UNKNOWN" not in names
    order = [names.index(n) for n in ("open_project", "set_top", "add_files", "open_solution",
                                      "set_part", "create_clock", "csim_design",
                                      "csynth_design", "export_design")]
    assert order == sorted(order)
    assert calls[names.index("set_top")][1:] == ["cnn_axis"]
    assert "xczu3eg-sbva484-1-i" in calls[names.index("set_part")]
    assert "5" in calls[names.index("create_clock")]
    added = [c for c in calls if c[0] == "add_files"]
    assert any("firmware/cnn_axis.cpp" in c for c in added)
    assert any("tb/expected.txt" in c for c in added)
    rc, calls, err = _standin("vivado", root / "vivado_bd.tcl", "jobs=2")
    assert rc == 0, err
    names = [c[0] for c in calls]
    assert "UNKNOWN" not in names and "write_bitstream" in " ".join(
        " ".join(c) for c in calls)
    assert (root / "cnn.bit").is_file() and (root / "cnn.hwh").is_file()


def test_exported_testbench_runs_the_axi_top_bit_exactly(exported, tmp_path):
    """One g++ build in the configuration build_prj.tcl gives csim_design."""
    from qfx.csim.toolchain import CompileError, ap_types_include_dir, compile_cpp

    ap_types = ap_types_include_dir()
    fw = exported.firmware_dir
    try:
        exe = compile_cpp([exported.tb_source, fw / "cnn.cpp", fw / "cnn_axis.cpp"],
                          tmp_path / "tb_cnn", include_dirs=[ap_types, fw],
                          flags=("-O1", "-std=c++14", "-DQFX_TB_AXIS", "-Wno-unknown-pragmas"))
    except CompileError as err:  # pragma: no cover - shows the compiler's output
        pytest.fail(f"{err}\n{err.stderr}")
    proc = subprocess.run([str(exe), "inputs.txt", str(tmp_path / "out.txt"), "expected.txt"],
                          cwd=exported.tb_dir, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(read_vectors(tmp_path / "out.txt"),
                          read_vectors(exported.expected_vectors))


# ---------------------------------------------------------------------------- the report
def test_report_numbers_are_labelled_estimate(exported):
    md = exported.report_files["md"].read_text()
    assert "estimate" in md.splitlines()[0]
    assert "not a synthesis result" in md
    assert "xczu3eg-sbva484-1-i" in md and "200.0 MHz" in md
    headers = [ln for ln in md.splitlines() if ln.startswith("| layer | op | mults")]
    assert len(headers) == 1
    for col in ("DSP", "LUT", "FF", "BRAM18K", "latency cycles", "latency µs"):
        assert f"{col} (estimate)" in headers[0], col
    assert "| resource | used (estimate) | budget | utilisation (estimate) |" in md
    assert "latency (estimate)" in md and "µs" in md
    for node in ("n_1", "n_2", "n_6"):
        assert f"| {node} |" in md
    data = json.loads(exported.report_files["json"].read_text())
    assert data["kind"] == "estimate" and data["format"] == "qfx-hls-report"
    assert data["estimate"]["dsp"] == exported.report.total.dsp
    assert data["estimate"]["latency_us"] == pytest.approx(
        exported.report.latency_cycles / 200.0)
    assert data["board"]["name"] == "ultra96v2" and data["clock_mhz"] == 200.0
    assert data["project"]["axis_top"] == "cnn_axis" and data["reuse"] == 2
    assert all("estimate" in row and "dsp" in row["estimate"] for row in data["layers"])
    assert {row["node"] for row in data["layers"]} >= {"n_0", "n_1", "n_2", "n_6"}
    assert exported.report_files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = exported.readme.read_text()
    assert "vitis_hls -f build_prj.tcl" in readme and "vivado -mode batch" in readme
    assert "from driver import Driver" in readme and "estimate" in readme


# ---------------------------------------------------------------------------- budget
def test_over_budget_fails_atomically_and_exports_with_warn(big, tmp_path):
    out = tmp_path / "big"
    with pytest.raises(ValueError) as info:
        export_hls(big, out_dir=out, board="ultra96")
    msg = str(info.value)
    assert "DSP" in msg and "> 360 on ultra96v2 (estimate)" in msg and "\n" not in msg
    assert "reuse=" in msg  # suggests a reuse factor that fits
    assert not out.exists() and _leftovers(tmp_path) == []
    with pytest.warns(ResourceBudgetWarning, match=r"DSP \d+ > 360 on ultra96v2"):
        prj = export_hls(big, out_dir=out, board="ultra96", on_budget="warn", test_vectors=2)
    assert prj.root == out.absolute() and not prj.report.fits
    assert json.loads((out / "report.json").read_text())["fits_estimate"] is False
    assert "Over budget (estimate)" in (out / "report.md").read_text()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export_hls(big, out_dir=tmp_path / "quiet", on_budget="ignore", test_vectors=2)


def test_a_failure_anywhere_leaves_no_directory(cnn, tmp_path, monkeypatch):
    import qfx.backends.hls.export as export_mod

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while writing the report")

    monkeypatch.setattr(export_mod, "write_report", broken)
    out = tmp_path / "p"
    with pytest.raises(RuntimeError, match="disk full"):
        export_hls(cnn, out_dir=out)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_unknown_board_lists_the_known_ones(cnn, tmp_path):
    with pytest.raises(ValueError) as info:
        export_hls(cnn, out_dir=tmp_path / "p", board="nexys")
    msg = str(info.value)
    assert "nexys" in msg
    for known in ("ultra96v2", "pynq-z2", "zcu104", "kv260"):
        assert known in msg
    assert list(tmp_path.iterdir()) == []


def test_force_semantics(cnn, tmp_path):
    out = tmp_path / "p"
    export_hls(cnn, out_dir=out, test_vectors=2)
    (out / "marker").write_text("mine")
    with pytest.raises(FileExistsError, match="force"):
        export_hls(cnn, out_dir=out, test_vectors=2)
    assert (out / "marker").read_text() == "mine"  # untouched
    prj = export_hls(cnn, out_dir=out, force=True, board="pynq-z2", test_vectors=3, reuse=2)
    assert not (out / "marker").exists()
    assert "set_part xc7z020clg400-1" in (out / "build_prj.tcl").read_text()
    assert prj.clock_mhz == 100.0 and read_vectors(prj.input_vectors).shape[0] == 3
    assert _leftovers(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        export_hls(cnn, out_dir=tmp_path / "file", force=True)


def test_bad_arguments_are_refused_before_writing(cnn, tmp_path):
    for kwargs, match in (({"on_budget": "maybe"}, "on_budget must be one of"),
                          ({"io": "dataflow"}, "io='dataflow' is not an architecture"),
                          ({"reuse": 0}, "reuse must be an integer >= 1"),
                          ({"clock_mhz": 0}, "clock_mhz"),
                          ({"project_name": "a-b"}, "is not a C\\+\\+ identifier")):
        with pytest.raises(ValueError, match=match):
            export_hls(cnn, out_dir=tmp_path / "p", **kwargs)
    with pytest.raises(ValueError, match="out_dir is required"):
        export_hls(cnn)
    with pytest.raises(ValueError, match="example_input"):
        export_hls(nn.Sequential(QInput(8), QLinear(2, 2)), out_dir=tmp_path / "p")
    assert list(tmp_path.iterdir()) == []


def test_the_backend_exports_graphs_only(cnn_model, cnn, tmp_path):
    net, x = cnn_model
    assert qfx.export_hls is export_hls
    with pytest.raises(ValueError, match="exports a frozen Graph, not a Sequential"):
        hls_export.export_hls(net, tmp_path / "p")
    assert list(tmp_path.iterdir()) == []
    prj = hls_export.export_hls(cnn, tmp_path / "g", project_name="cnn", test_vectors=2)
    assert read_vectors(prj.input_vectors).shape == (2, 16)


def test_exports_a_model_a_graph_and_a_frozen_file_alike(cnn_model, cnn, tmp_path):
    net, x = cnn_model
    a = export_hls(net, x[:1], tmp_path / "a", project_name="cnn")
    frozen = save_graph(cnn, tmp_path / "m.qfx.npz")
    b = export_hls(frozen, out_dir=tmp_path / "b", project_name="cnn", test_vectors=x.numpy())
    assert (a.firmware_dir / "cnn.cpp").read_text() == (b.firmware_dir / "cnn.cpp").read_text()
    # a model's default vectors are its example input; a file's are random over the input range
    assert read_vectors(a.input_vectors).shape == (1, 16)
    c = export_hls(frozen, out_dir=tmp_path / "c")
    assert read_vectors(c.input_vectors).shape == (8, 16)


# ---------------------------------------------------------------------------- names
def test_a_hostile_module_name_reaches_the_code_only_as_an_identifier(tmp_path):
    torch.manual_seed(5)
    net = nn.Sequential()
    net.add_module("inp", QInput(8))
    net.add_module("a;system('x')", QLinear(4, 3))
    net.add_module("r", QReLU())
    x = torch.randn(16, 4)
    prj = export_hls(_calibrated(net, x), x[:1], tmp_path / "p")
    texts = {p: p.read_text() for p in prj.root.rglob("*")
             if p.is_file() and p.suffix in TEXT_SUFFIXES}
    assert any(p.name == "driver.py" for p in texts) and any(p.suffix == ".tcl" for p in texts)
    for p, text in texts.items():
        for bad in ("system('x')", 'system("x")', "a;system", "system(x)"):
            assert bad not in text, (p, bad)
    assert any("a_system__x__" in t for p, t in texts.items() if p.suffix == ".cpp")
    assert "a_system__x__" in (prj.root / "report.md").read_text()
    # a raw, unsanitized name in a graph is refused before anything is written
    g = qfx.freeze(net, x[:1])
    g.nodes[1].name = 'a;system("x")'
    with pytest.raises(ValueError, match="not a C\\+\\+ identifier"):
        export_hls(g, out_dir=tmp_path / "q")
    assert not (tmp_path / "q").exists() and _leftovers(tmp_path) == []


# ---------------------------------------------------------------------------- the driver
def test_driver_imports_without_pynq_and_packs_like_the_stream_format(exported, cnn,
                                                                      cnn_model):
    pynq_loaded = "pynq" in sys.modules
    drv = _load_driver(exported.driver)
    assert ("pynq" in sys.modules) == pynq_loaded  # pynq is imported by Driver() only
    assert drv.AXIS_WIDTH == exported.axis_width and drv.IP_NAME == "cnn_axis_0"
    assert drv.DMA_NAME == "axi_dma_0" and drv.BITFILE == "cnn.bit"
    assert drv.N_IN == 16 and drv.N_OUT == 5
    (port_in,) = drv.INPUTS
    (port_out,) = drv.OUTPUTS
    t_in = cnn.edges[cnn.inputs[0]].type
    t_out = cnn.edges[cnn.outputs[0]].type
    assert port_in.cpp == t_in.cpp() and port_out.cpp == t_out.cpp()
    # raw -> stream buffer -> words == layout.axis_words, and back
    rng = np.random.default_rng(0)
    raw = rng.integers(t_in.raw_min, t_in.raw_max + 1, size=drv.N_IN)
    buf = drv.pack_raw(raw)
    assert drv.buffer_to_words(buf) == axis_words(raw, t_in, drv.AXIS_WIDTH).tolist()
    assert drv.words_to_buffer(drv.buffer_to_words(buf)).tobytes() == buf.tobytes()
    assert np.array_equal(drv.axis_unpack(drv.buffer_to_words(buf), port_in), raw)
    out_raw = rng.integers(t_out.raw_min, t_out.raw_max + 1, size=drv.N_OUT)
    words = axis_words(out_raw, t_out, drv.AXIS_WIDTH)
    assert np.array_equal(drv.unpack_raw(drv.words_to_buffer(words)), out_raw)
    assert np.array_equal(drv.unpack_raw(drv.words_to_buffer(words)),
                          axis_unpack(words, t_out, drv.AXIS_WIDTH))
    with pytest.raises(ValueError, match="raw input values"):
        drv.pack_raw(raw[:-1])
    with pytest.raises(ValueError, match="not mantissas"):
        drv.pack_raw(np.full(drv.N_IN, t_in.raw_max + 1))
    # floats are packed exactly as the executor's input node quantizes them
    _, x = cnn_model
    xs = np.concatenate([x.numpy(), 9 * x.numpy(), [np.full((1, 4, 4), 0.5 ** 5)]])
    packed = drv.pack_floats(xs)
    trace = run_graph(cnn, xs, trace=True).trace[cnn.nodes[0].name]
    assert np.array_equal(packed, trace.reshape(len(xs), -1))
    assert np.array_equal(packed[:24], read_vectors(exported.input_vectors))
    (out_values,) = drv.split_outputs(read_vectors(exported.expected_vectors))
    assert np.array_equal(out_values, t_out.from_int(read_vectors(exported.expected_vectors)))
    assert np.array_equal(drv.read_vectors(exported.expected_vectors),
                          read_vectors(exported.expected_vectors))
    if importlib.util.find_spec("pynq") is None:
        with pytest.raises(ModuleNotFoundError, match="pynq"):
            drv.Driver()


def _render_driver(tmp_path: Path, ports: list[dict], axis_width: int,
                   io: str = "parallel") -> ModuleType:
    ctx = {"project": "t", "bitfile": "t.bit", "ip_name": "t_axis_0", "dma_name": "axi_dma_0",
           "axis_width": axis_width, "inputs": ports, "outputs": ports, "io": io}
    path = tmp_path / f"driver_{axis_width}_{io}.py"
    path.write_text(text_environment().get_template("driver.py.j2").render(ctx))
    return _load_driver(path, f"qfx_test_driver_{axis_width}_{io}")


def _port(t: FixedType, shape: tuple[int, ...]) -> dict:
    return {"name": "in_x", "edge": "x", "shape": shape, "cpp": t.cpp(), "width": t.width,
            "int_bits": t.int_bits, "signed": t.signed, "rounding": t.rounding,
            "overflow": t.overflow, "sat_bits": t.sat_bits}


@pytest.mark.parametrize("axis_width", [16, 128])
def test_driver_round_trips_narrow_and_wide_stream_words(tmp_path, axis_width):
    t = FixedType(12, 5, signed=True)
    drv = _render_driver(tmp_path, [_port(t, (7,))], axis_width)
    raw = np.array([-2048, -1, 0, 1, 2047, -300, 5])
    buf = drv.pack_raw(raw)
    assert buf.nbytes == 7 * axis_width // 8
    assert drv.buffer_to_words(buf) == axis_words(raw, t, axis_width).tolist()
    assert np.array_equal(drv.unpack_raw(buf), raw)
    assert np.array_equal(drv.unpack_raw(drv.words_to_buffer(axis_words(raw, t, axis_width))),
                          axis_unpack(axis_words(raw, t, axis_width), t, axis_width))


def test_stream_driver_sends_pixels_channels_innermost(tmp_path):
    """io="stream": pack_raw/unpack_raw take NCHW values and put them on the wire pixel by
    pixel (the order qfx::stream::axis_to_pixels reads, the testbench's -DQFX_TB_AXIS order)."""
    t = FixedType(8, 3)
    drv = _render_driver(tmp_path, [_port(t, (2, 2, 3))], 16, io="stream")
    raw = np.arange(12) - 6  # NCHW: channel 0 is -6..-1, channel 1 is 0..5
    words = drv.buffer_to_words(drv.pack_raw(raw))
    assert np.array_equal(axis_unpack(words, t, 16), [-6, 0, -5, 1, -4, 2, -3, 3, -2, 4, -1, 5])
    assert np.array_equal(axis_unpack(words, t, 16), raw[wire_order((2, 2, 3), "stream")])
    assert np.array_equal(drv.unpack_raw(drv.pack_raw(raw)), raw)
    flat = _render_driver(tmp_path, [_port(t, (2, 2, 3))], 16)
    assert np.array_equal(axis_unpack(flat.buffer_to_words(flat.pack_raw(raw)), t, 16), raw)


def test_driver_quantizer_matches_fixed_type_for_every_mode(tmp_path):
    drv = _render_driver(tmp_path, [_port(FixedType(8, 3), (1,))], 8)
    rng = np.random.default_rng(1)
    base = np.concatenate([
        rng.normal(0, 4, 400), rng.normal(0, 1e3, 100), rng.uniform(-1, 1, 100) * 1e-3,
        np.arange(-40, 41) / 8 + 1 / 16,  # ties on several grids
        [0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324, 1e300, -1e300, 2.0 ** 70, -(2.0 ** 70)]])
    types = []
    for width, int_bits in ((1, 1), (3, 0), (8, 3), (8, -2), (6, 10), (17, 9), (33, 12),
                            (50, 20), (62, 30)):
        for signed in (True, False):
            for rounding in ROUNDING_MODES:
                for overflow in OVERFLOW_MODES:
                    if overflow == "WRAP_SM" and not signed:
                        continue
                    for n in {0, 1, min(2, width)}:
                        types.append(FixedType(width, int_bits, signed, rounding, overflow, n))
    for t in types:
        port = drv.Port("in_x", "x", (base.size,), t.cpp(), t.width, t.int_bits, t.signed,
                        t.rounding, t.overflow, t.sat_bits)
        x = base * (2.0 ** (t.int_bits - 3))
        assert np.array_equal(drv.quantize(x, port), t.to_int(x)), t.cpp()
    with pytest.raises(ValueError, match="NaN"):
        drv.quantize([np.nan], port)


def test_random_vectors_cover_the_input_range(cnn):
    (v,) = random_test_vectors(cnn, 50)
    t = cnn.edges[cnn.inputs[0]].type
    assert v.shape == (50, 1, 4, 4) and v.min() < t.min and v.max() > t.max
    with pytest.raises(ValueError, match="samples"):
        random_test_vectors(cnn, 0)


# ---------------------------------------------------------------------------- CLI
@pytest.fixture()
def cli(monkeypatch):
    entry = ("qfx.cli.export", "register")
    if entry not in qfx.cli._COMMANDS:
        monkeypatch.setattr(qfx.cli, "_COMMANDS", (*qfx.cli._COMMANDS, entry))
    return qfx.cli.main


def test_cli_exports_a_frozen_model(cli, cnn, big, tmp_path, capsys):
    model = save_graph(cnn, tmp_path / "m.qfx.npz")
    out = tmp_path / "prj"
    assert cli(["export", str(model), "--board", "ultra96", "-o", str(out), "--reuse", "4",
                "--samples", "5", "--clock", "150"]) == 0
    text = capsys.readouterr().out
    assert "ESTIMATE" in text and "150 MHz" in text and str(out) in text
    assert read_vectors(out / "tb" / "inputs.txt").shape == (5, 16)
    assert "create_clock -period 6.66667" in (out / "build_prj.tcl").read_text()
    # errors: one line on stderr, exit status 2, no traceback
    assert cli(["export", str(model), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "Traceback" not in err and err.count("\n") == 1
    assert cli(["export", str(model), "-o", str(out), "--force", "--reuse", "8"]) == 0
    assert json.loads((out / "project.json").read_text())["reuse"] == 8
    capsys.readouterr()
    assert cli(["export", str(model), "-o", str(tmp_path / "x"), "--board", "nexys"]) == 2
    err = capsys.readouterr().err
    assert "ultra96v2" in err and "pynq-z2" in err and err.count("\n") == 1
    assert cli(["export", str(model), "-o", str(tmp_path / "st"), "--io", "stream"]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "st" / "project.json").read_text())["io"] == "stream"
    assert "io=stream (DATAFLOW" in (tmp_path / "st" / "report.md").read_text()
    big_file = save_graph(big, tmp_path / "big.qfx.npz")
    # --reuse auto (the default) makes it fit; a manual reuse that does not fit is refused
    assert cli(["export", str(big_file), "-o", str(tmp_path / "auto"), "--samples", "2"]) == 0
    assert "fits the board" in capsys.readouterr().out
    assert cli(["export", str(big_file), "-o", str(tmp_path / "big"), "--reuse", "1"]) == 2
    err = capsys.readouterr().err
    assert "DSP" in err and "(estimate)" in err and err.count("\n") == 1
    assert not (tmp_path / "big").exists()
    assert cli(["export", str(big_file), "-o", str(tmp_path / "big"), "--on-budget", "warn",
                "--reuse", "1", "--samples", "2"]) == 0
    captured = capsys.readouterr()
    assert "warning" in captured.err and "OVER BUDGET" in captured.out
    assert cli(["export", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "y")]) == 2
    assert "no model file" in capsys.readouterr().err


def test_cli_exports_a_training_checkpoint_with_dataset_vectors(cli, tmp_path, capsys):
    from qfx.data import get_dataset
    from qfx.training.config import parse_train_config, run_training

    opts = {"name": "synthetic", "n": 64, "shape": [1, 8, 8]}
    cfg = parse_train_config({
        "dataset": opts, "model": "digits_cnn", "training": {"epochs": 1, "batch_size": 32},
        "quantization": {"bits": 6}, "out_dir": str(tmp_path / "run")})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared machine: no thread contention
    try:
        ckpt = run_training(cfg, progress=False).checkpoint
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "prj"
    assert cli(["export", str(ckpt), "-o", str(out), "--samples", "3", "--reuse", "64"]) == 0
    assert "ESTIMATE" in capsys.readouterr().out
    split = get_dataset("synthetic", n=64, shape=(1, 8, 8))
    x = split.test.tensors[0][:3].numpy().astype(np.float64)
    prj = HLSProject.load(out)
    t = prj.inputs[0].type
    assert np.array_equal(read_vectors(prj.input_vectors), t.to_int(x).reshape(3, -1))
