"""Session fixture of the C-simulation tests: the exported projects of ``csim_projects``."""

from __future__ import annotations

import pytest
from csim_projects import Projects, make_projects

from qfx.csim.toolchain import ap_types_include_dir

try:
    ap_types_include_dir()
except RuntimeError as err:  # pragma: no cover - hls4ml is a dependency
    pytest.skip(f"no ap_types headers: {err}", allow_module_level=True)


@pytest.fixture(scope="session")
def projects(tmp_path_factory: pytest.TempPathFactory) -> Projects:
    """The good, corrupted and broken projects (exported once per session)."""
    return make_projects(tmp_path_factory.mktemp("csim"))
