"""Files are written with the user's umask; errors name the user's path (issue #17, 7 and 8)."""

import os
import stat

import pytest
import torch
from builders import tiny_graph

from qfx.atomic import atomic_write_text
from qfx.backends.hls.writer import export_firmware
from qfx.ir.serialize import save_graph


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p):
    return stat.S_IMODE(os.stat(p).st_mode)


def test_frozen_model_and_project_follow_the_umask(tmp_path, umask_022):
    model = save_graph(tiny_graph(), tmp_path / "m.qfx.npz")
    assert _mode(model) == 0o644
    prj = export_firmware(tiny_graph(), tmp_path / "prj", test_vectors=torch.randn(2, 4))
    assert _mode(prj.root) == 0o755
    for p in prj.root.rglob("*"):
        assert _mode(p) == (0o755 if p.is_dir() else 0o644), p


def test_os_errors_name_the_users_path_not_the_temp_file(tmp_path, monkeypatch):
    import qfx.atomic

    def full(src, dst):
        raise OSError(28, "No space left on device", src)

    monkeypatch.setattr(qfx.atomic.os, "replace", full)
    target = tmp_path / "out.txt"
    with pytest.raises(OSError) as exc:
        atomic_write_text(target, "data")
    assert str(target) in str(exc.value) and ".tmp" not in str(exc.value)
    assert exc.value.errno == 28
    assert list(tmp_path.iterdir()) == []


def test_staging_errors_name_the_project_path_not_the_stage(tmp_path, monkeypatch):
    """A disk-full error while a whole project is staged names the file inside the folder the
    user asked for, and leaves neither the stage nor a half project behind."""
    from pathlib import Path

    real = Path.write_text

    def full(self, *args, **kwargs):
        if self.name.endswith(".cpp"):
            raise OSError(28, "No space left on device", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    target = tmp_path / "prj"
    with pytest.raises(OSError) as exc:
        export_firmware(tiny_graph(), target)
    assert exc.value.errno == 28 and str(exc.value.filename).startswith(str(target) + os.sep)
    assert ".tmp-" not in str(exc.value) and ".export-" not in str(exc.value)
    assert list(tmp_path.iterdir()) == []
