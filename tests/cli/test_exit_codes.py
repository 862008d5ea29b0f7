"""Exit codes mean the same for every command (issue #17, item 5)."""

import subprocess

import pytest
from builders import tiny_graph

from qfx.cli import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_TOOL,
    EXIT_USAGE,
    build_parser,
    exit_code,
    main,
)
from qfx.ir.serialize import save_graph


def test_codes_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for line in ("0    success", "1    verification failed", "2    bad input",
                 "3    tool failure", "4    internal error"):
        assert line in out


def test_exit_code_mapping():
    assert exit_code(ValueError("x")) == EXIT_USAGE
    assert exit_code(FileNotFoundError("x")) == EXIT_USAGE
    assert exit_code(PermissionError("x")) == EXIT_USAGE
    assert exit_code(RuntimeError("g++ crashed")) == EXIT_TOOL
    assert exit_code(subprocess.TimeoutExpired("g++", 1)) == EXIT_TOOL
    for bug in (KeyError("k"), AttributeError("a"), ZeroDivisionError(), TypeError("t")):
        assert exit_code(bug) == EXIT_INTERNAL != EXIT_FAILED


def test_success_and_usage(tmp_path, capsys):
    model = save_graph(tiny_graph(), tmp_path / "m.qfx.npz")
    assert main(["info", str(model)]) == EXIT_OK
    assert main(["info", str(tmp_path / "missing.qfx.npz")]) == EXIT_USAGE
    assert main(["export", str(model), "-o", str(tmp_path / "p"), "--board", "nope"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("qfx ") for e in err)
    with pytest.raises(SystemExit) as exc:
        main(["export"])  # argparse usage error
    assert exc.value.code == EXIT_USAGE


def test_internal_error_is_not_the_mismatch_code(tmp_path, monkeypatch, capsys):
    import qfx.flows.loading

    def boom(*a, **k):
        raise KeyError("bug")

    monkeypatch.setattr(qfx.flows.loading, "load_frozen", boom)
    assert main(["info", "x.qfx.npz"]) == EXIT_INTERNAL
    assert "internal error: KeyError" in capsys.readouterr().err


def test_tool_failure(tmp_path, monkeypatch):
    import qfx.flows.loading

    def crash(*a, **k):
        raise RuntimeError("hls4ml could not compile")

    monkeypatch.setattr(qfx.flows.loading, "load_frozen", crash)
    assert main(["info", "x.qfx.npz"]) == EXIT_TOOL


def test_debug_after_the_subcommand(tmp_path):
    args = build_parser().parse_args(["export", "m.qfx.npz", "-o", "p", "--debug"])
    assert args.debug is True
    assert build_parser().parse_args(["--debug", "info", "m"]).debug is True
    assert build_parser().parse_args(["info", "m"]).debug is False
    assert build_parser().parse_args(["flow", "run", "f.yaml", "--debug"]).debug is True
    with pytest.raises(FileNotFoundError):
        main(["info", str(tmp_path / "missing.qfx.npz"), "--debug"])
