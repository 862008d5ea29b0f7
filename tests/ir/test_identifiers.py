"""C++ keywords are refused wherever a name reaches C++ or Tcl (issue #17, item 6)."""

import pytest
from builders import tiny_graph

from qfx.ir.graph import CPP_KEYWORDS, sanitize_identifier
from qfx.ir.verify import check_identifier


@pytest.mark.parametrize("name", ["int", "class", "main", "and", "namespace", "NULL"])
def test_keywords_refused(name):
    with pytest.raises(ValueError, match=f"project_name '{name}' is a C\\+\\+ keyword"):
        check_identifier(name, "project_name")


def test_identifiers_accepted_and_sanitized():
    assert check_identifier("int8_model", "project_name") == "int8_model"
    for kw in CPP_KEYWORDS:
        check_identifier(sanitize_identifier(kw), "sanitized")


def test_export_refuses_keyword_project_name(tmp_path):
    from qfx.backends.hls.export import export_hls

    with pytest.raises(ValueError, match="'int' is a C\\+\\+ keyword"):
        export_hls(tiny_graph(), tmp_path / "prj", project_name="int")
    assert not (tmp_path / "prj").exists()


def test_cli_export_refuses_keyword(tmp_path, capsys):
    from qfx.cli import main
    from qfx.ir.serialize import save_graph

    model = save_graph(tiny_graph(), tmp_path / "m.qfx.npz")
    assert main(["export", str(model), "-o", str(tmp_path / "prj"), "--name", "int"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "C++ keyword" in err[0]
