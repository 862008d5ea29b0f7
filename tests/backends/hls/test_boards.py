"""Boards (``boards/*.yaml`` via ``qfx.backends.hls.boards``), the package-data finder
(``qfx.package_data``), the wheel's contents, and resource budgets
(``qfx.backends.hls.budget``)."""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from qfx.backends.hls import boards as boards_mod
from qfx.backends.hls.boards import (
    Board,
    BoardError,
    format_board_table,
    list_boards,
    load_board,
)
from qfx.backends.hls.budget import ResourceBudget, ResourceEstimate
from qfx.cli.boards import register
from qfx.package_data import RESOURCE_KINDS, resource_dir

REPO = Path(__file__).resolve().parents[3]

# Device facts (AMD DS891 / DS190 / DS987): part, LUT, FF, DSP, BRAM36, URAM, PS, DMA width.
EXPECTED = {
    "ultra96v2": ("xczu3eg-sbva484-1-i", 70_560, 141_120, 360, 216, 0, "zynq_ultra_ps_e", 128),
    "ultra96v1": ("xczu3eg-sbva484-1-e", 70_560, 141_120, 360, 216, 0, "zynq_ultra_ps_e", 128),
    "pynq-z2": ("xc7z020clg400-1", 53_200, 106_400, 220, 140, 0, "processing_system7", 64),
    "zcu104": ("xczu7ev-ffvc1156-2-e", 230_400, 460_800, 1_728, 312, 96, "zynq_ultra_ps_e", 128),
    "kv260": ("xck26-sfvc784-2LV-c", 117_120, 234_240, 1_248, 144, 64, "zynq_ultra_ps_e", 128),
}


# -- built-in boards -------------------------------------------------------------------------------


def test_builtin_boards_carry_the_device_facts() -> None:
    boards = {b.name: b for b in list_boards()}
    assert sorted(boards) == sorted(EXPECTED)
    for name, (part, lut, ff, dsp, bram36, uram, ps, dma) in EXPECTED.items():
        b = boards[name]
        assert b.part == part
        assert (b.resources.lut, b.resources.ff, b.resources.dsp) == (lut, ff, dsp)
        assert (b.resources.bram36, b.resources.bram18k, b.resources.uram) == (
            bram36, 2 * bram36, uram,
        )
        assert b.ps == ps and b.dma_data_width == dma
        assert b.board_part is not None and b.board_part.count(":") == 3
        assert b.source is not None and b.source.stem == name  # file named after the board


def test_board_parts_and_ps_ports() -> None:
    assert load_board("ultra96v2").board_part == "avnet.com:ultra96v2:part0:1.2"
    assert load_board("pynq-z2").board_part == "tul.com.tw:pynq-z2:part0:1.0"
    assert load_board("zcu104").board_part == "xilinx.com:zcu104:part0:1.1"
    kv260 = load_board("kv260")
    assert kv260.board_part == "xilinx.com:kv260_som:part0:1.3"
    assert kv260.board_connections == (
        ("som240_1_connector", "xilinx.com:kv260_carrier:som240_1_connector:1.3"),
    )
    u96 = load_board("ultra96")
    assert (u96.ps_master_port, u96.ps_slave_port) == ("M_AXI_HPM0_FPD", "S_AXI_HP0_FPD")
    pynq = load_board("pynq-z2")
    assert (pynq.ps_master_port, pynq.ps_slave_port) == ("M_AXI_GP0", "S_AXI_HP0")
    assert pynq.family == "Zynq-7000" and u96.family == "Zynq UltraScale+ MPSoC"
    assert pynq.clock_mhz == 100.0 and pynq.clock_period_ns == 10.0
    assert u96.clock_mhz == 200.0 and u96.clock_period_ns == 5.0


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("ultra96", "ultra96v2"),
        ("ULTRA96", "ultra96v2"),
        ("Ultra96-V2", "ultra96v2"),
        ("ultra96v2", "ultra96v2"),
        (" ultra96v2 ", "ultra96v2"),
        ("ultra96v1", "ultra96v1"),
        ("PYNQ-Z2", "pynq-z2"),
        ("ZCU104", "zcu104"),
        ("KV260", "kv260"),
    ],
)
def test_lookup_by_name_or_alias_is_case_insensitive(query: str, name: str) -> None:
    assert load_board(query).name == name


def test_ultra96_v1_and_v2_differ_only_in_temperature_grade() -> None:
    v1, v2 = load_board("ultra96v1"), load_board("ultra96")
    assert v1.part == "xczu3eg-sbva484-1-e" and v2.part == "xczu3eg-sbva484-1-i"
    assert v1.resources == v2.resources  # the budgets' names (the boards') do not count
    assert (v1.resources.name, v2.resources.name) == ("ultra96v1", "ultra96v2")
    assert ResourceBudget.from_board(v2) == v2.resources


def test_unknown_board_lists_the_known_ones() -> None:
    with pytest.raises(BoardError) as info:
        load_board("zedboard")
    message = str(info.value)
    assert "unknown board 'zedboard'" in message
    for name in EXPECTED:
        assert name in message
    assert "ultra96" in message and "\n" not in message


def test_board_passes_through_and_compares_by_value(tmp_path: Path) -> None:
    b = load_board("ultra96")
    assert load_board(b) is b
    copy = tmp_path / "copy.yaml"
    copy.write_text((REPO / "boards" / "ultra96v2.yaml").read_text())
    assert load_board(copy) == b  # `source` is not part of equality
    assert load_board(copy).source == copy


# -- user board files and schema errors ------------------------------------------------------------


def _ultra96_data() -> dict:
    return yaml.safe_load((REPO / "boards" / "ultra96v2.yaml").read_text())


def _write(tmp_path: Path, data: object, name: str = "myboard.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_user_board_file_by_str_and_path(tmp_path: Path) -> None:
    data = _ultra96_data()
    data.update(name="my-zu3", aliases=["lab-board"], clock_mhz=250, board_part=None)
    path = _write(tmp_path, data)
    for ref in (path, str(path)):
        b = load_board(ref)
        assert (b.name, b.clock_mhz, b.board_part, b.aliases) == (
            "my-zu3", 250.0, None, ("lab-board",),
        )
        assert b.clock_period_ns == 4.0
    # a user file is not registered as a built-in board
    with pytest.raises(BoardError, match="unknown board 'my-zu3'"):
        load_board("my-zu3")


def test_bram18k_alone_is_enough_and_bram36_is_derived(tmp_path: Path) -> None:
    data = _ultra96_data()
    del data["resources"]["bram36"]
    assert load_board(_write(tmp_path, data)).resources.bram36 == 216
    data = _ultra96_data()
    del data["resources"]["bram18k"]
    assert load_board(_write(tmp_path, data)).resources.bram18k == 432


def _mutate(path: str, value: object) -> dict:
    data = _ultra96_data()
    keys = path.split(".")
    target = data
    for key in keys[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("part", _DELETE, r"missing key 'part' \(required: name, part, ps,"),
        ("resources.dsp", _DELETE, r"missing key 'resources.dsp'"),
        ("clok_mhz", 100, r"unknown key 'clok_mhz'; allowed: name, part, .*clock_mhz"),
        ("resources.luts", 1, r"unknown key 'resources.luts'; allowed: lut, ff, dsp"),
        ("resources.dsp", "360", r"'resources.dsp' must be an int, got str"),
        ("resources.dsp", True, r"'resources.dsp' must be an int, got bool"),
        ("resources.lut", -1, r"'resources.lut' must be non-negative"),
        ("resources.bram18k", 400, r"bram18k \(400\) must be twice resources.bram36 \(216\)"),
        ("resources", [1, 2], r"'resources' must be a mapping"),
        ("clock_mhz", "fast", r"'clock_mhz' must be a number, got str"),
        ("clock_mhz", 0, r"clock_mhz must be a number in \(0, 1000\]"),
        ("part", 7020, r"key 'part' must be a string, got int"),
        ("part", "xc7z020 clg400", r"part 'xc7z020 clg400' must match"),
        ("name", "Ultra 96", r"name 'Ultra 96' must match"),
        ("ps", "versal_cips", r"ps 'versal_cips' is not one of: processing_system7, zynq_ultra"),
        ("ps_master_port", "M_AXI_GP0", r"not a zynq_ultra_ps_e master port; allowed: M_AXI_HPM0"),
        ("ps_slave_port", "S_AXI_HP0", r"not a zynq_ultra_ps_e slave port; allowed: S_AXI_HP0_FPD"),
        ("dma_data_width", 256, r"dma_data_width 256 is not supported .*allowed: 32, 64, 128"),
        ("board_part", "avnet.com:ultra96v2", r"board_part .* must look like vendor:board:part0"),
        ("aliases", "ultra96", r"'aliases' must be a list of strings"),
        ("board_connections", ["x"], r"'board_connections' must map connector names"),
    ],
)
def test_schema_errors_are_one_clear_line(
    tmp_path: Path, key: str, value: object, expected: str
) -> None:
    path = _write(tmp_path, _mutate(key, value))
    with pytest.raises(BoardError) as info:
        load_board(path)
    message = str(info.value)
    assert message.startswith(f"board file {path}: ")
    assert re.search(expected, message), message
    assert "\n" not in message


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(BoardError, match="does not exist"):
        load_board(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(BoardError, match="not valid YAML"):
        load_board(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(BoardError, match="must be a YAML mapping, got list"):
        load_board(listing)
    with pytest.raises(BoardError, match="board must be a name, a path or a Board, got int"):
        load_board(42)  # type: ignore[arg-type]


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(BoardError, match="not valid YAML"):
        load_board(evil)


def test_direct_construction_validates_too() -> None:
    res = ResourceBudget("x", lut=1, ff=1, dsp=1, bram18k=2, uram=0)
    with pytest.raises(BoardError, match="ps_slave_port 'S_AXI_HP0_FPD' is not a processing"):
        Board(
            name="x", part="xc7z020clg400-1", ps="processing_system7", clock_mhz=100,
            ps_master_port="M_AXI_GP0", ps_slave_port="S_AXI_HP0_FPD", dma_data_width=64,
            resources=res,
        )
    good = dict(name="x", part="xc7z020clg400-1", ps="processing_system7", clock_mhz=100,
                ps_master_port="M_AXI_GP0", ps_slave_port="S_AXI_HP0", dma_data_width=64)
    assert Board(**good, resources=res).resources.bram36 == 1
    with pytest.raises(BoardError, match="bram18k must be even"):
        Board(**good, resources=ResourceBudget("x", lut=1, ff=1, dsp=1, bram18k=3, uram=0))
    with pytest.raises(BoardError, match="resources must be a ResourceBudget"):
        Board(**good, resources={"lut": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ResourceBudget.dsp must be a non-negative int"):
        ResourceBudget("x", lut=1, ff=1, dsp=-1, bram18k=2, uram=0)


def test_duplicate_names_across_board_files_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _ultra96_data()
    second = _ultra96_data()
    second.update(name="other", aliases=["ultra96"])
    _write(tmp_path, first, "a.yaml")
    _write(tmp_path, second, "b.yaml")
    monkeypatch.setattr(boards_mod, "resource_dir", lambda kind: tmp_path)
    with pytest.raises(BoardError, match="'ultra96' is used by both .*a.yaml and .*b.yaml"):
        list_boards()


# -- `qfx boards` ----------------------------------------------------------------------------------


def _cli() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qfx")
    register(parser.add_subparsers(dest="command"))
    return parser


def test_boards_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    args = _cli().parse_args(["boards"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:7] == ["name", "part", "LUT", "FF", "DSP", "BRAM18K", "URAM"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == sorted(EXPECTED)
    assert rows["ultra96v2"][:8] == [
        "ultra96v2", "xczu3eg-sbva484-1-i", "70,560", "141,120", "360", "432", "0", "200",
    ]
    assert rows["pynq-z2"][:8] == [
        "pynq-z2", "xc7z020clg400-1", "53,200", "106,400", "220", "280", "0", "100",
    ]
    assert format_board_table(list_boards()) == "\n".join(lines)


def test_boards_command_with_names_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _ultra96_data()
    data.update(name="mine", aliases=[])
    path = _write(tmp_path, data)
    args = _cli().parse_args(["boards", "ultra96", str(path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[1:]] == ["ultra96v2", "mine"]
    args = _cli().parse_args(["boards", "nosuch"])
    with pytest.raises(BoardError, match="^unknown board 'nosuch'; known boards: kv260"):
        args.func(args)  # qfx.cli reports ValueErrors as one line and a non-zero exit code


# -- package data ----------------------------------------------------------------------------------


def test_resource_dirs_resolve_in_the_checkout() -> None:
    assert resource_dir("boards") == REPO / "boards"
    assert resource_dir("hls_templates") == REPO / "hls_templates"
    assert (resource_dir("hls_templates") / "build_prj.tcl.j2").is_file()
    with pytest.raises(ValueError, match="unknown resource kind 'board'; allowed: boards, flows"):
        resource_dir("board")


def _data_files(kind: str) -> list[str]:
    """Files a wheel must ship for ``kind``: everything but dot-files and caches."""
    root = REPO / kind
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") or part == "__pycache__" for part in p.parts)
    )


def _can_build_wheels_offline() -> bool:
    """pip and setuptools (with bdist_wheel built in, or the wheel package) are installed.

    Checked in a child process: importing setuptools here would patch distutils for the tests.
    """
    if importlib.util.find_spec("pip") is None or importlib.util.find_spec("setuptools") is None:
        return False
    probe = (
        "import importlib.util as u, setuptools, sys\n"
        "ok = u.find_spec('setuptools.command.bdist_wheel') or u.find_spec('wheel')\n"
        "sys.exit(0 if ok else 1)\n"
    )
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def test_wheel_ships_boards_and_templates_and_they_are_found_after_install(
    tmp_path: Path,
) -> None:
    """Build a wheel from a copy of the source tree, check that every board/template/flow file
    is in it at its own relative path, install it into a fresh prefix (no editable install) and
    check that the installed qfx finds its boards and templates there."""
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".*")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("qfx", *RESOURCE_KINDS):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(dist), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("qfx-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data_prefixes = {m.group(1) for n in names if (m := re.match(r"(qfx-[^/]+\.data/data/)", n))}
    assert len(data_prefixes) == 1, sorted(names)
    prefix = data_prefixes.pop() + "share/qfx/"
    for kind in RESOURCE_KINDS:
        missing = [f for f in _data_files(kind) if f"{prefix}{kind}/{f}" not in names]
        assert not missing, f"{kind} files missing from the wheel (see pyproject data-files)"
    assert f"{prefix}boards/ultra96v2.yaml" in names
    assert f"{prefix}hls_templates/build_prj.tcl.j2" in names
    assert f"{prefix}hls_templates/vivado_bd.tcl.j2" in names
    assert "qfx/package_data.py" in names and "qfx/backends/hls/boards.py" in names

    install = tmp_path / "prefix"
    inst = subprocess.run(
        # --ignore-installed: CI has qfx installed (editable); pip would otherwise do nothing
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile",
         "--ignore-installed",
         "--disable-pip-version-check", "-q", "--prefix", str(install), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert inst.returncode == 0, inst.stdout + inst.stderr
    (site,) = install.glob("lib/python*/site-packages")
    probe = (
        "import qfx, qfx.package_data as r\n"
        "from qfx.backends.hls.boards import load_board\n"
        "from qfx.backends.hls.tcl import render_build_tcl\n"
        "print(qfx.__file__)\n"
        "print(r.resource_dir('boards'))\n"
        "print(r.resource_dir('hls_templates'))\n"
        "print(load_board('ultra96').source)\n"
        "print('set_part xczu3eg-sbva484-1-i' in render_build_tcl('p', 't', 'ultra96',"
        " sources=['f.cpp'], tb_sources=['tb.cpp']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    pkg, boards_dir, templates_dir, board_file, rendered = run.stdout.split("\n")[:5]
    data = install / "share" / "qfx"
    assert Path(pkg).resolve().is_relative_to(site.resolve())
    assert Path(boards_dir) == data / "boards"
    assert Path(templates_dir) == data / "hls_templates"
    assert Path(board_file) == data / "boards" / "ultra96v2.yaml"
    assert rendered == "True"


# -- resource budgets ------------------------------------------------------------------------------


def test_estimate_against_a_board() -> None:
    est = ResourceEstimate(lut=35_280, ff=14_112, dsp=412, bram18k=432, uram=0, latency_cycles=1)
    assert not est.fits("ultra96")
    assert est.over_budget("ultra96") == ["DSP 412 > 360 on ultra96v2"]
    assert est.fits("zcu104") and est.over_budget(load_board("zcu104")) == []
    u = est.utilisation("ultra96")
    assert u == {"LUT": 0.5, "FF": 0.1, "DSP": 412 / 360, "BRAM18K": 1.0, "URAM": 0.0}


def test_fracbnn_reference_design_fits_the_ultra96() -> None:
    # FracBNN's Ultra96 CIFAR-10 accelerator: 126 DSP, 51,444 LUT, 212 BRAM18K at 250 MHz.
    fracbnn = ResourceEstimate(lut=51_444, dsp=126, bram18k=212)
    assert fracbnn.fits("ultra96")
    assert fracbnn.utilisation("ultra96")["LUT"] == pytest.approx(51_444 / 70_560)


def test_uram_on_a_board_without_uram_and_several_overruns() -> None:
    est = ResourceEstimate(lut=80_000, dsp=500, uram=2)
    assert est.over_budget("ultra96") == [
        "LUT 80000 > 70560 on ultra96v2",
        "DSP 500 > 360 on ultra96v2",
        "URAM 2 > 0 on ultra96v2",
    ]
    assert math.isinf(est.utilisation("ultra96")["URAM"])
    assert est.fits("kv260")


def test_budget_with_headroom() -> None:
    budget = ResourceBudget.from_board("ultra96", fraction=0.8)
    assert (budget.lut, budget.ff, budget.dsp, budget.bram18k, budget.uram) == (
        56_448, 112_896, 288, 345, 0,
    )
    est = ResourceEstimate(dsp=300)
    assert est.fits("ultra96") and not est.fits(budget)
    assert est.over_budget(budget) == ["DSP 300 > 288 on ultra96v2 (80%)"]
    with pytest.raises(ValueError, match=r"fraction must be a number in \(0, 1\]"):
        ResourceBudget.from_board("ultra96", fraction=1.5)


def test_estimates_add_and_convert_latency() -> None:
    a = ResourceEstimate(lut=10, ff=20, dsp=1, bram18k=2, uram=0, latency_cycles=100)
    b = ResourceEstimate(lut=5, ff=5, dsp=0, bram18k=1, uram=1, latency_cycles=400)
    total = a + b
    assert total == ResourceEstimate(lut=15, ff=25, dsp=1, bram18k=3, uram=1, latency_cycles=500)
    assert total.latency_us(250) == 2.0
    assert (a + ResourceEstimate(lut=1)).latency_cycles is None
    assert ResourceEstimate().latency_us(100) is None
    assert sum([a, b], ResourceEstimate(latency_cycles=0)) == total


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dsp": -1}, "ResourceEstimate.dsp must be a non-negative int, got -1"),
        ({"lut": 1.5}, "ResourceEstimate.lut must be a non-negative int, got 1.5"),
        ({"bram18k": True}, "ResourceEstimate.bram18k must be a non-negative int, got True"),
        ({"latency_cycles": -3}, "ResourceEstimate.latency_cycles must be a non-negative int"),
    ],
)
def test_estimate_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ResourceEstimate(**kwargs)
