"""`qfx.csim.csim`: the exported firmware, compiled unchanged, is bit-exact to the executor (on
random inputs that saturate and wrap, explicit x256 inputs and the project's own vectors); builds
are cached; a corrupted weight is caught and its node named; compile errors show file:line."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from csim_projects import CORRUPT_NODE, Projects

from qfx.backends.hls.layout import read_vectors
from qfx.backends.hls.writer import export_firmware
from qfx.csim import (
    CompileError,
    CSimReport,
    CSimTimeout,
    build_key,
    build_testbench,
    csim,
    random_inputs,
)
from qfx.ir import run_graph


def _reference(prj, xs: list[np.ndarray]) -> np.ndarray:
    """The executor's raw outputs for float inputs, computed independently of the harness."""
    g = prj.graph
    t = g.edges[g.inputs[0]].type
    res = run_graph(g, t.from_int(t.to_int(xs[0])))
    return res.raw[0].reshape(len(xs[0]), -1), res


def _assert_exact(rep: CSimReport, samples: int) -> None:
    assert rep.bit_exact is True and rep.mismatches == 0 and rep.first_divergence is None
    assert rep.samples == samples and rep.outputs.shape == (samples, 4)
    assert rep.outputs.dtype == np.int64 and rep.reference.dtype == np.int64
    assert np.array_equal(rep.outputs, rep.reference)
    assert str(rep).startswith(f"BIT-EXACT: all {samples * 4} output values of {samples}")


def test_random_inputs_that_saturate_and_wrap_are_bit_exact(projects: Projects):
    prj = projects.good
    rep = csim(prj.root, samples=48, seed=1, cache_dir=projects.cache)
    _assert_exact(rep, 48)
    assert rep.binary.is_file() and rep.samples_per_second > 0 and rep.run_seconds > 0
    # the harness compared with the true software model on these very inputs...
    xs = random_inputs(prj.graph, 48, seed=1)
    ref, res = _reference(prj, xs)
    assert np.array_equal(rep.reference, ref) and np.array_equal(rep.outputs, ref)
    # ...and those inputs saturate the input format and the SAT conv, and wrap every WRAP layer
    t = prj.graph.edges[prj.graph.inputs[0]].type
    assert ((xs[0] > t.max) | (xs[0] < t.min)).any()
    assert res.overflow["c1"] > 0
    for node in ("c2", "add", "fc"):
        assert prj.graph.edges[node].type.overflow == "WRAP" and res.overflow[node] > 0, node


def test_explicit_inputs_x256_and_the_projects_own_vectors(projects: Projects):
    prj = projects.good
    x = torch.randn(20, 3, 8, 8, generator=torch.Generator().manual_seed(5)) * 256
    rep = csim(prj, x, cache_dir=projects.cache, jobs=3)
    _assert_exact(rep, 20)
    assert rep.jobs == 3
    assert np.array_equal(rep.outputs, _reference(prj, [x.numpy()])[0])

    rep = csim(prj, cache_dir=projects.cache)  # tb/inputs.txt
    _assert_exact(rep, 12)
    assert np.array_equal(rep.inputs, read_vectors(prj.input_vectors))
    assert np.array_equal(rep.outputs, read_vectors(prj.expected_vectors))


def test_second_run_is_cached_and_does_not_recompile(projects: Projects):
    prj = projects.good
    first = build_testbench(prj, cache_dir=projects.cache)  # built by the tests above
    stamp = first.binary.stat().st_mtime_ns
    rep = csim(prj, samples=8, cache_dir=projects.cache, jobs=1)
    assert rep.cached is True and rep.compile_seconds == 0.0 and rep.bit_exact
    assert rep.binary == first.binary and rep.binary.stat().st_mtime_ns == stamp
    assert "(cached binary)" in str(rep)


def test_build_key_covers_the_sources_and_flags_not_the_vectors(projects: Projects, tmp_path):
    import shutil

    shutil.copytree(projects.good.root, tmp_path / "p")
    root = tmp_path / "p"
    key = build_key(root)
    assert build_key(projects.good) == key  # content, not location
    assert build_key(root, opt="-O2") != key and build_key(root, trace=True) != key
    (root / "tb" / "inputs.txt").write_text("# other vectors\n1 2 3\n")
    assert build_key(root) == key
    header = root / "firmware" / "weights" / f"{CORRUPT_NODE}_w.h"
    header.write_text(header.read_text() + "// edited\n")
    assert build_key(root) != key


def test_corrupted_weight_is_caught_and_its_node_named(projects: Projects):
    prj = projects.corrupted
    rep = csim(prj, samples=48, seed=1, cache_dir=projects.cache)
    assert rep.bit_exact is False and rep.mismatches > 0
    assert rep.mismatches == int(np.count_nonzero(rep.outputs != rep.reference))
    d = rep.first_divergence
    assert d is not None and d.node == CORRUPT_NODE and d.op == "conv2d" and not d.note
    assert d.cpp_raw != d.python_raw and d.sample in rep.trace_samples
    # the Python side of the divergence is the executor's value of that node and element
    values = projects.corrupted.graph.edges[prj.graph.inputs[0]].type.from_int(
        rep.inputs[d.sample].reshape(1, 3, 8, 8))
    trace = run_graph(prj.graph, values, trace=True).trace[CORRUPT_NODE].reshape(-1)
    assert d.python_raw == int(trace[d.element])
    assert rep.trace_binary is not None and rep.trace_binary != rep.binary
    text = str(rep)
    assert text.startswith(f"MISMATCH: {rep.mismatches} of {48 * 4} output values differ")
    assert f"first divergence at node '{CORRUPT_NODE}' (conv2d), sample {d.sample}, " \
           f"element {d.element}: C++ raw {d.cpp_raw} != Python raw {d.python_raw}" in text
    # without tracing, the first differing output is reported instead
    quick = csim(prj, samples=48, seed=1, cache_dir=projects.cache, trace_on_mismatch=False)
    assert quick.first_divergence is None and quick.mismatches == rep.mismatches
    assert "first differing output: sample" in str(quick)


def test_syntax_error_raises_compile_error_with_file_and_line(projects: Projects):
    with pytest.raises(CompileError) as info:
        csim(projects.broken, samples=4, cache_dir=projects.cache)
    first = str(info.value).splitlines()[0]
    header = projects.broken.weights_dir / f"{CORRUPT_NODE}_w.h"
    assert f"{header}:" in first and ": error: " in first
    line = next(i for i, text in enumerate(header.read_text().splitlines(), 1) if "oops" in text)
    assert f"{header}:{line}:" in first
    assert info.value.returncode not in (0, None) and "oops" in info.value.stderr


def test_bad_arguments_give_clear_errors(projects: Projects, tmp_path):
    prj = projects.good
    with pytest.raises(ValueError, match="either inputs or samples"):
        csim(prj, np.zeros((2, 3, 8, 8)), samples=2, cache_dir=projects.cache)
    with pytest.raises(ValueError, match=r"shape \(samples, 3, 8, 8\)"):
        csim(prj, np.zeros((2, 3, 8)), cache_dir=projects.cache)
    with pytest.raises(ValueError, match="NaN"):
        csim(prj, np.full((1, 3, 8, 8), np.nan), cache_dir=projects.cache)
    with pytest.raises(ValueError, match="jobs"):
        csim(prj, samples=2, jobs=0, cache_dir=projects.cache)
    with pytest.raises(ValueError, match="samples"):
        csim(prj, samples=0, cache_dir=projects.cache)
    with pytest.raises(ValueError, match="opt"):
        csim(prj, samples=2, opt="-O3 -march=native", cache_dir=projects.cache)
    with pytest.raises(FileNotFoundError, match="not a qfx HLS project"):
        csim(tmp_path, samples=2)
    bare = export_firmware(prj.graph, tmp_path / "bare")
    with pytest.raises(FileNotFoundError, match="no test vectors"):
        csim(bare, cache_dir=projects.cache)


def test_run_timeout_kills_the_simulation(projects: Projects):
    build_testbench(projects.good, cache_dir=projects.cache)  # the compile is not timed out
    with pytest.raises(CSimTimeout, match="longer than"):
        # ~1 s of simulation per process, killed after 0.05 s
        csim(projects.good, samples=20000, jobs=2, timeout=0.05, cache_dir=projects.cache)


def test_default_jobs_use_the_cores(projects: Projects):
    rep = csim(projects.good, samples=64, cache_dir=projects.cache)
    assert rep.jobs == min(len(os.sched_getaffinity(0)), 16) and rep.bit_exact
