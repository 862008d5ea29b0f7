"""What the C-simulation proves: both arithmetic paths of the firmware (the native C-sim path and
the ap_fixed code that synthesis compiles, ``-DQFX_AP_ARITH``), against the software model run
on the user's float inputs, with the project's own ``tb/expected.txt`` checked too; and an
interrupted compile leaves no compiler running and no temporary file in the build cache."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from csim_projects import Projects

import qfx
from qfx.backends.hls.project import HLSProject
from qfx.backends.hls.writer import export_firmware
from qfx.cli.csim import main
from qfx.csim import CSimError, build_testbench, csim
from qfx.fixed.fixed_type import FixedType
from qfx.ir.graph import Edge, Graph, Node


def test_both_paths_are_proven_and_reported(projects: Projects, tmp_path: Path) -> None:
    rep = qfx.csim(projects.good, samples=12, arith="both", synth_samples=5, jobs=2,
                   opt="-O1", cache_dir=projects.cache)
    assert rep.bit_exact and rep.arith == "native" and rep.synth is not None
    assert rep.synth.arith == "synth" and rep.synth.samples == 5 and rep.synth.bit_exact
    assert rep.proven == {"native": 12, "synth": 5}
    assert np.array_equal(rep.synth.outputs, rep.outputs[:5])
    doc = rep.to_dict()
    assert doc["proven"] == {"native": 12, "synth": 5}
    assert [p["arith"] for p in doc["proofs"]] == ["native", "synth"]
    assert "synthesis arithmetic, -DQFX_AP_ARITH" in rep.summary()
    # the synthesis path alone; the two builds are different binaries
    only = csim(projects.good, samples=4, arith="synth", opt="-O1", cache_dir=projects.cache)
    assert only.bit_exact and only.arith == "synth" and only.synth is None
    assert only.proven == {"synth": 4} and only.binary != rep.binary
    with pytest.raises(ValueError, match="arith"):
        csim(projects.good, samples=4, arith="fast")


def test_synth_path_mismatch_fails_the_verdict(projects: Projects) -> None:
    rep = csim(projects.corrupted, samples=16, seed=1, arith="both", opt="-O1",
               cache_dir=projects.cache)
    assert not rep.bit_exact and rep.synth is not None and not rep.synth.bit_exact
    assert rep.synth.first_divergence is not None
    assert rep.synth.first_divergence.node == "c2"
    assert "synth" not in rep.proven


def _copy(prj: HLSProject, dst: Path) -> HLSProject:
    shutil.copytree(prj.root, dst)
    return HLSProject.load(dst)


def test_corrupted_expected_file_is_reported(projects: Projects, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    prj = _copy(projects.good, tmp_path / "p")
    exp = prj.expected_vectors or prj.tb_dir / "expected.txt"
    lines = exp.read_text().splitlines(keepends=True)
    data = [i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")]
    k = data[2]  # sample 2
    values = lines[k].split()
    values[1] = str(int(values[1]) + 1)  # element 1
    lines[k] = " ".join(values) + "\n"
    exp.write_text("".join(lines))
    with pytest.raises(CSimError, match=r"expected\.txt disagrees with the software model.*"
                                        r"first at sample 2, element 1"):
        csim(prj, arith="native", opt="-O1", cache_dir=projects.cache)
    # also when other inputs are simulated, and on the command line (exit 2, one line)
    with pytest.raises(CSimError, match="expected.txt"):
        csim(prj, samples=4, opt="-O1", cache_dir=projects.cache)
    code = main([str(prj.root), "--arith", "native", "--opt", "1", "--cache-dir",
                 str(projects.cache)])
    out, err = capsys.readouterr()
    assert code == 2 and not out and str(exp) in err and "sample 2, element 1" in err


def _two_type_graph() -> Graph:
    """x (4 values, ap_fixed<6,3>: LSB 1/8) -> input cast to ap_fixed<12,3> (LSB 1/512)."""
    g = Graph(inputs=["x"], outputs=["q"])
    g.add_edge(Edge("x", (4,), FixedType(6, 3, rounding="RND", overflow="SAT")))
    g.add_edge(Edge("q", (4,), FixedType(12, 3, rounding="RND", overflow="SAT")))
    g.add_node(Node("q", "input", ["x"], "q"))
    return g


def test_input_edge_type_differing_from_the_first_cast_is_a_mismatch(
        projects: Projects, tmp_path: Path) -> None:
    """The reference is the model on the user's floats, not on floats already rounded to the
    exported input type: a coarser input edge type than the first node's cast cannot hide."""
    graph = _two_type_graph()
    prj = export_firmware(graph, tmp_path / "p", project_name="twotype")
    x = np.array([[0.3, -1.01, 2.2, 0.0625], [0.5, 1.0, -2.0, 0.25]])
    rep = csim(prj, x, arith="both", opt="-O1", cache_dir=projects.cache)
    assert not rep.bit_exact and rep.mismatching_samples == 1
    assert rep.mismatch_positions(1)[0][0] == 0  # sample 0 (off the coarse grid) differs
    # the testbench was given the input edge type's raw values of the floats
    assert rep.inputs.tolist()[1] == [4, 8, -16, 2]
    # inputs on the coarse grid agree on both paths
    ok = csim(prj, x[1:], arith="both", opt="-O1", cache_dir=projects.cache)
    assert ok.bit_exact and ok.proven == {"native": 1, "synth": 1}


_FAKE_CXX = """\
#!{python}
import os, sys, time
if "--version" in sys.argv:
    print("fake-g++ 1.0")
    sys.exit(0)
out = sys.argv[sys.argv.index("-o") + 1]
open(out, "w").write("partial")
with open({pids!r}, "a") as f:
    f.write(f"{{os.getpid()}}\\n")
time.sleep(120)
"""


def test_ctrl_c_during_a_compile_kills_the_compilers_and_leaves_no_temp_files(
        projects: Projects, tmp_path: Path) -> None:
    pids = tmp_path / "pids.txt"
    fake = tmp_path / "fake-g++"
    fake.write_text(_FAKE_CXX.format(python=sys.executable, pids=str(pids)))
    fake.chmod(0o755)
    cache = tmp_path / "cache"
    # A process started with SIGINT ignored keeps it ignored (so does Python), and a test
    # worker may have inherited that: the child restores Ctrl-C as a user's terminal has it.
    child = textwrap.dedent(f"""
        import signal, sys
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from qfx.csim import build_testbench
        try:
            build_testbench({str(projects.good.root)!r}, cache_dir={str(cache)!r},
                            compiler={str(fake)!r}, arith="synth")
        except KeyboardInterrupt:
            sys.exit(42)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=Path(__file__).parents[2])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # both translation units are compiling
        if pids.is_file() and len(pids.read_text().split()) >= 2:
            break
        assert proc.poll() is None, "the build ended before it was interrupted"
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the fake compilers never started")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 42
    for pid in map(int, pids.read_text().split()):
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"compiler process {pid} survived the interrupt")
    leftovers = [p for p in cache.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers


def test_build_testbench_compiles_translation_units_separately(projects: Projects) -> None:
    b = build_testbench(projects.good, opt="-O1", cache_dir=projects.cache, arith="synth")
    meta = (b.binary.parent / "build.json").read_text()
    assert '"arith": "synth"' in meta and "-DQFX_AP_ARITH" in meta
    assert sorted(p.name for p in b.binary.parent.iterdir()) == ["build.json", b.binary.name]


def test_synthesis_storage_gives_the_same_bits(projects: Projects, tmp_path: Path) -> None:
    """-DQFX_AP_ARITH -DQFX_AP_STORAGE compiles the synthesis code exactly (ap_int constants,
    range assignments, no value tables): the project's own testbench passes against
    tb/expected.txt, as with the faster C-sim storage."""
    from qfx.csim.toolchain import ap_types_include_dir, compile_cpp

    prj = projects.good
    exe = compile_cpp([prj.tb_source, *prj.sources], tmp_path / "tb",
                      include_dirs=[ap_types_include_dir(), *prj.include_dirs],
                      flags=["-std=c++14", "-DNDEBUG", "-O1", "-DQFX_AP_ARITH",
                             "-DQFX_AP_STORAGE"])
    exp = prj.expected_vectors or prj.tb_dir / "expected.txt"
    proc = subprocess.run([str(exe), str(prj.input_vectors), str(tmp_path / "out.txt"),
                           str(exp)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert " 0 mismatches" in proc.stdout and "no expected" not in proc.stdout


def test_synth_path_proves_the_axi_stream_top_of_a_board_project(tmp_path: Path) -> None:
    """In a board project the synthesis path drives the AXI-Stream wrapper (what Vitis'
    csim_design compiles and what becomes the IP), the native path the plain top: a fault in the
    wrapper alone is caught by the synthesis path and passes the native one."""
    import re

    from builders import mlp

    from qfx.backends.hls.export import export_hls

    net, x = mlp("SAT")
    graph = qfx.freeze(net, x[:1])
    prj = export_hls(graph, tmp_path / "board", board="ultra96")
    cache = tmp_path / "cache"
    rep = csim(prj, samples=24, arith="both", opt="-O1", cache_dir=cache)
    assert rep.bit_exact and rep.proven == {"native": 24, "synth": 24}
    assert "AXI-Stream top" in rep.synth.summary()
    assert [(d["arith"], d["top"]) for d in rep.proofs] == [("native", "plain"), ("synth", "axis")]
    meta = (rep.synth.binary.parent / "build.json").read_text()
    assert "-DQFX_TB_AXIS" in meta and prj.axis_source.name in meta
    # drop the top bit of every input word in the wrapper: negative inputs now read wrong
    src = prj.axis_source.read_text()
    bad, n = re.subn(r"word\.data\.range\((\d+), 0\)",
                     lambda m: f"word.data.range({int(m.group(1)) - 1}, 0)", src)
    assert n == 1
    prj.axis_source.write_text(bad)
    rep = csim(prj, samples=24, arith="both", opt="-O1", cache_dir=cache)
    assert rep.proven == {"native": 24} and not rep.bit_exact
    assert rep.synth is not None and not rep.synth.bit_exact
