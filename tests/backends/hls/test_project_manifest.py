"""project.json is validated when a project is loaded (issue #17, item 4)."""

import json

import pytest
from builders import tiny_graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qfx.backends.hls.project import HLSProject
from qfx.backends.hls.writer import export_firmware


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return export_firmware(tiny_graph(), tmp_path_factory.mktemp("p") / "prj", test_vectors=None)


def _load_with(project, tmp_path, doc):
    import shutil

    root = tmp_path / "copy"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(project.root, root)
    (root / "project.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return root


def _refused(root, match):
    with pytest.raises(ValueError) as exc:
        HLSProject.load(root)
    msg = str(exc.value)
    assert str(root / "project.json") in msg and "\n" not in msg and match in msg, msg


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(project_name="int"), "project_name 'int' is a C++ keyword"),
    (lambda d: d.update(top="a b"), "top 'a b' is not a C++ identifier"),
    (lambda d: d.pop("namespace"), "missing key 'namespace'"),
    (lambda d: d.update(io="serial"), "io: invalid value"),
    (lambda d: d.update(reuse="2"), "reuse: invalid value"),
    (lambda d: d.update(files=["../../etc/passwd"]), "not a path inside the project"),
    (lambda d: d.update(model="gone.qfx.npz"), "model: no frozen model"),
    (lambda d: d["inputs"][0].update(type="float"), "inputs[0]: cannot parse"),
    (lambda d: d["outputs"][0].pop("shape"), "outputs[0]: missing key 'shape'"),
])
def test_hand_edits_name_the_file_and_key(project, tmp_path, edit, match):
    doc = json.loads((project.root / "project.json").read_text())
    edit(doc)
    _refused(_load_with(project, tmp_path, doc), match)


def test_not_json(project, tmp_path):
    _refused(_load_with(project, tmp_path, "{not json"), "not valid JSON")
    _refused(_load_with(project, tmp_path, "[1, 2]"), "expected a JSON object")


_VALUES = st.none() | st.booleans() | st.integers(-3, 1 << 40) | st.text(max_size=10) | \
    st.lists(st.integers(-1, 4), max_size=3) | st.dictionaries(st.text(max_size=4), st.none())


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_corruptions_are_value_errors(project, tmp_path_factory, data):
    doc = json.loads((project.root / "project.json").read_text())
    key = data.draw(st.sampled_from(sorted(doc)))
    if data.draw(st.booleans()):
        del doc[key]
    else:
        doc[key] = data.draw(_VALUES)
    root = _load_with(project, tmp_path_factory.mktemp("r"), doc)
    try:
        HLSProject.load(root)
    except ValueError as err:
        assert str(root / "project.json") in str(err) and "\n" not in str(err), err
