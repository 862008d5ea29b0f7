"""Session fixture of the C-simulation tests: the exported projects of ``csim_projects``."""

from __future__ import annotations

import pytest
from csim_projects import Projects, make_projects

from qfx.csim.toolchain import ap_types_include_dir

# hls4ml (a required dependency) ships the ap_types headers: fail loudly if they are missing
ap_types_include_dir()


@pytest.fixture(scope="session")
def projects(tmp_path_factory: pytest.TempPathFactory) -> Projects:
    """The good, corrupted and broken projects (exported once per session)."""
    return make_projects(tmp_path_factory.mktemp("csim"))
