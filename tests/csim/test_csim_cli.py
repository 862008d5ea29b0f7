"""`qfx csim PROJECT_DIR`: exit 0 when bit-exact, 1 on a mismatch (naming the first diverging
node), 2 on usage and compile errors (one line on stderr, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from csim_projects import CORRUPT_NODE, Projects

from qfx.cli.csim import EXIT_ERROR, EXIT_MISMATCH, EXIT_OK, main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_exit_0_when_bit_exact_with_json(projects: Projects, capsys, tmp_path):
    out_json = tmp_path / "r" / "report.json"
    code, out, err = _run(capsys, projects.good.root, "--samples", "16", "--jobs", "2",
                          "--cache-dir", projects.cache, "--json", out_json)
    assert code == EXIT_OK == 0 and out.startswith("BIT-EXACT: all 64 output values") and not err
    doc = json.loads(out_json.read_text())
    assert doc["bit_exact"] is True and doc["mismatches"] == 0 and doc["samples"] == 16
    assert doc["first_divergence"] is None and doc["jobs"] == 2

    x = np.random.default_rng(3).normal(size=(6, 3, 8, 8)) * 64
    np.save(tmp_path / "x.npy", x)
    code, out, _ = _run(capsys, projects.good.root, "--inputs", tmp_path / "x.npy",
                        "--cache-dir", projects.cache)
    assert code == 0 and "BIT-EXACT: all 24 output values of 6 samples" in out


def test_exit_1_on_mismatch_names_the_node(projects: Projects, capsys, tmp_path):
    code, out, _ = _run(capsys, projects.corrupted.root, "--samples", "48", "--seed", "1",
                        "--cache-dir", projects.cache, "--json", tmp_path / "r.json")
    assert code == EXIT_MISMATCH == 1
    assert out.startswith("MISMATCH: ")
    assert f"first divergence at node '{CORRUPT_NODE}' (conv2d), sample " in out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["bit_exact"] is False and doc["first_divergence"]["node"] == CORRUPT_NODE
    assert doc["first_mismatches"][0]["cpp_raw"] != doc["first_mismatches"][0]["python_raw"]


def test_exit_2_on_errors_with_one_line(projects: Projects, capsys, tmp_path):
    code, out, err = _run(capsys, projects.broken.root, "--samples", "4",
                          "--cache-dir", projects.cache)
    header = projects.broken.weights_dir / f"{CORRUPT_NODE}_w.h"
    assert code == EXIT_ERROR == 2 and not out
    assert err.count("\n") == 1 and err.startswith("qfx csim: error: g++ could not compile")
    assert f"{header}:" in err and "Traceback" not in err

    code, _, err = _run(capsys, tmp_path / "missing")
    assert code == 2 and err.startswith("qfx csim: error: ") and err.count("\n") == 1

    code, _, err = _run(capsys, projects.good.root, "--samples", "0")
    assert code == 2 and "--samples must be >= 1" in err

    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = _run(capsys, projects.good.root, "--inputs", tmp_path / "obj.npy")
    assert code == 2 and "without pickle" in err

    np.save(tmp_path / "bad.npy", np.zeros((2, 5)))
    code, _, err = _run(capsys, projects.good.root, "--inputs", tmp_path / "bad.npy",
                        "--cache-dir", projects.cache)
    assert code == 2 and "must have shape (samples, 3, 8, 8)" in err

    with pytest.raises(SystemExit) as info:  # argparse usage errors also exit 2
        main([str(projects.good.root), "--samples", "3", "--inputs", "x.npy"])
    assert info.value.code == 2


def test_python_m_entry_point(projects: Projects):
    proc = subprocess.run([sys.executable, "-m", "qfx.cli.csim", str(projects.good.root),
                           "--samples", "8", "--cache-dir", str(projects.cache)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("BIT-EXACT")
