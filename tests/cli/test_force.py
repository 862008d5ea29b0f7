"""--force deletes only what qfx wrote (issue #17, item 1)."""

import json
import os

import numpy as np
import pytest
from builders import tiny_graph

from qfx.atomic import check_replaceable, check_replaceable_file, is_qfx_folder
from qfx.backends.hls.export import export_hls
from qfx.cli import EXIT_OK, EXIT_USAGE, main
from qfx.ir.serialize import save_graph


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_graph(tiny_graph(), tmp_path_factory.mktemp("m") / "m.qfx.npz")


def _user_folder(path):
    path.mkdir()
    (path / "thesis.tex").write_text("years of work")
    return path


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_export_force_refuses_the_current_folder(model, tmp_path, monkeypatch, capsys):
    user = _user_folder(tmp_path / "home")
    monkeypatch.chdir(user)
    assert main(["export", str(model), "-o", ".", "--force"]) == EXIT_USAGE
    line = _one_line(capsys)
    assert str(user) in line and "not a folder qfx wrote" in line
    assert (user / "thesis.tex").read_text() == "years of work"
    assert sorted(os.listdir(user)) == ["thesis.tex"]


@pytest.mark.parametrize("extra", [[], ["--backend", "hls4ml"], ["--format", "onnx"]])
def test_export_force_refuses_a_user_folder(model, tmp_path, capsys, extra):
    user = _user_folder(tmp_path / "mine")
    assert main(["export", str(model), "-o", str(user), "--force", *extra]) == EXIT_USAGE
    assert str(user) in _one_line(capsys)
    assert sorted(os.listdir(user)) == ["thesis.tex"]


def test_export_force_replaces_its_own_project_and_empty_folders(model, tmp_path, capsys):
    prj = tmp_path / "prj"
    prj.mkdir()  # empty: fine
    assert main(["export", str(model), "-o", str(prj), "--force", "--samples", "2"]) == EXIT_OK
    assert is_qfx_folder(prj)
    assert main(["export", str(model), "-o", str(prj), "--force", "--samples", "3"]) == EXIT_OK
    assert json.loads((prj / "project.json").read_text())["format"] == "qfx-hls-project"
    (prj / "project.json").write_text('{"format": "somebody-else"}')
    assert main(["export", str(model), "-o", str(prj), "--force"]) == EXIT_USAGE
    assert (prj / "project.json").read_text() == '{"format": "somebody-else"}'


def test_api_export_refuses_a_user_folder(tmp_path):
    user = _user_folder(tmp_path / "mine")
    with pytest.raises(FileExistsError, match="not a folder qfx wrote"):
        export_hls(tiny_graph(), user, force=True)
    assert sorted(os.listdir(user)) == ["thesis.tex"]


def test_symlinks_and_files_are_refused(tmp_path):
    target = _user_folder(tmp_path / "real")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(FileExistsError, match="symbolic link"):
        check_replaceable(tmp_path / "link", force=True)
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        check_replaceable(tmp_path / "f", force=True)
    check_replaceable(tmp_path / "new", force=False)


@pytest.mark.parametrize("command", ["freeze", "import"])
def test_file_force_overwrites_only_frozen_models(model, tmp_path, capsys, command):
    mine = tmp_path / "notes.qfx.npz"
    mine.write_text("my notes")
    np.savez(tmp_path / "data.npz", a=np.zeros(3))
    for target in (mine, tmp_path / "data.npz"):
        before = target.read_bytes()
        assert main([command, str(model), "-o", str(target), "--force"]) == EXIT_USAGE
        assert str(target) in _one_line(capsys)
        assert target.read_bytes() == before


def test_freeze_force_overwrites_a_frozen_model(model, tmp_path, capsys):
    out = tmp_path / "copy.qfx.npz"
    save_graph(tiny_graph(), out)
    check_replaceable_file(out, force=True)
    assert main(["freeze", str(model), "-o", str(out), "--force"]) == EXIT_OK
    assert main(["freeze", str(model), "-o", str(out)]) == EXIT_USAGE
    assert "--force" in _one_line(capsys)


def test_hls4ml_export_is_atomic_and_relocated(model, tmp_path, capsys, monkeypatch):
    """The hls4ml project is built beside -o and swapped in complete: no file names the stage,
    and a failing rebuild with --force leaves the old project as it was."""
    import qfx.backends.hls4ml

    out = tmp_path / "h4"
    assert main(["export", str(model), "-o", str(out), "--backend", "hls4ml"]) == EXIT_OK
    assert is_qfx_folder(out) and sorted(p.name for p in tmp_path.iterdir()) == ["h4"]
    texts = [p.read_text(errors="ignore") for p in out.rglob("*")
             if p.is_file() and p.suffix in (".tcl", ".yml", ".json", ".cpp", ".h", ".py")]
    assert any(str(out) in t for t in texts)  # hls4ml's absolute paths now name -o
    assert not any(".h4.hls4ml-" in t for t in texts)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))

    def broken(*args, **kwargs):
        raise RuntimeError(f"hls4ml could not compile the project in {args[1]}: g++ failed")

    monkeypatch.setattr(qfx.backends.hls4ml, "export_hls4ml", broken)
    capsys.readouterr()
    assert main(["export", str(model), "-o", str(out), "--backend", "hls4ml", "--force"]) != 0
    err = capsys.readouterr().err
    assert str(out) in err and ".hls4ml-" not in err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h4"]
