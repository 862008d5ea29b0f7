"""Loading a .qfx.npz validates its whole structure (issue #17, item 4): a malformed or
hand-edited file is one ValueError naming the file and the key or node, never an internal error,
a MemoryError or silently truncated floats."""

import io
import json
import zipfile

import numpy as np
import pytest
import torch
from builders import cnn, tiny_graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qfx
from qfx.ir.serialize import load_graph, save_graph


@pytest.fixture(scope="module")
def graphs():
    net, x = cnn("SAT")
    return {"tiny": tiny_graph(), "cnn": qfx.freeze(net, x[:1])}


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _write(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in members.items():
            z.writestr(name, blob)
    return path


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _doc(members):
    return json.loads(np.load(io.BytesIO(members["__graph__.npy"])).tobytes())


def _with_doc(members, doc):
    out = dict(members)
    out["__graph__.npy"] = _npy(np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8))
    return out


def _refused(path, match):
    with pytest.raises(ValueError) as exc:
        load_graph(path)
    msg = str(exc.value)
    assert str(path) in msg and "\n" not in msg, msg
    assert match in msg, msg
    return msg


def test_round_trip(graphs, tmp_path):
    for name, g in graphs.items():
        back = load_graph(save_graph(g, tmp_path / f"{name}.qfx.npz"))
        assert [n.name for n in back.nodes] == [n.name for n in g.nodes]


def test_float_parameters_are_refused_not_truncated(graphs, tmp_path):
    src = save_graph(graphs["tiny"], tmp_path / "m.qfx.npz")
    members = _members(src)
    key = next(k for k in members if k.startswith("p") and "weight" in k)
    members[key] = _npy(np.load(io.BytesIO(members[key])).astype(np.float64) + 0.5)
    _refused(_write(tmp_path / "f.qfx.npz", members), "dtype float64")


def test_huge_declared_shapes_are_refused_before_allocating(graphs, tmp_path):
    src = save_graph(graphs["tiny"], tmp_path / "m.qfx.npz")
    members = _members(src)
    doc = _doc(members)
    doc["edges"][0]["shape"] = [1 << 20, 1 << 20, 1 << 20]
    _refused(_write(tmp_path / "e.qfx.npz", _with_doc(members, doc)), "more than the limit")
    members = _members(src)
    key = next(k for k in members if k.startswith("p") and "weight" in k)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<i8", "fortran_order": False, "shape": (1 << 40, 1 << 20)})
    members[key] = header.getvalue()  # magic + header, no data: nothing may be allocated
    _refused(_write(tmp_path / "a.qfx.npz", members), "more than the limit")


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.pop("nodes"), "nodes: expected a list"),
    (lambda d: d["nodes"][0].pop("op"), ".op: expected a string"),
    (lambda d: d["nodes"][0].pop("attrs"), ".attrs: expected a mapping"),
    (lambda d: d["edges"][0].update(type="float"), ".type: cannot parse"),
    (lambda d: d["edges"][0].update(shape=[0]), "dimensions must be >= 1"),
    (lambda d: d["nodes"][-1]["params"].update(weight="nope"), "no array 'nope'"),
    (lambda d: d["nodes"][-1].update(inputs=["ghost"]), "edge 'ghost' is not defined"),
    (lambda d: d.update(inputs="x"), "inputs: expected a list of names"),
    (lambda d: d.update(version=99), "unsupported frozen-model format"),
])
def test_hand_edits_name_the_key(graphs, tmp_path, edit, match):
    src = save_graph(graphs["tiny"], tmp_path / "m.qfx.npz")
    members = _members(src)
    doc = _doc(members)
    edit(doc)
    _refused(_write(tmp_path / "bad.qfx.npz", _with_doc(members, doc)), match)


def test_not_a_model(tmp_path):
    for name, blob in (("t.qfx.npz", b"hello"), ("e.qfx.npz", b"")):
        (tmp_path / name).write_bytes(blob)
        _refused(tmp_path / name, "not a qfx frozen model")
    np.save(tmp_path / "one.npy", np.zeros(3))
    (tmp_path / "one.npy").rename(tmp_path / "one.qfx.npz")
    _refused(tmp_path / "one.qfx.npz", "not a qfx frozen model")
    np.savez(tmp_path / "nog.npz", a=np.zeros(2, dtype=np.int64))
    _refused(tmp_path / "nog.npz", "no __graph__")


# ------------------------------------------------------------------ property: random corruption
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats(allow_nan=True)
    | st.text(max_size=12) | st.sampled_from(["ap_fixed<8,3>", "dense", "conv2d", "x", "int"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _check(path):
    try:
        load_graph(path)
    except ValueError as err:
        assert str(path) in str(err), err
        assert "\n" not in str(err), err


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(which=st.sampled_from(["tiny", "cnn"]), data=st.data())
def test_random_json_corruptions_are_value_errors(graphs, tmp_path_factory, which, data):
    tmp = tmp_path_factory.mktemp("c")
    members = _members(save_graph(graphs[which], tmp / "m.qfx.npz"))
    doc = _doc(members)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        target = data.draw(st.sampled_from(paths))
        parent = doc
        for k in target[:-1]:
            parent = parent[k]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[target[-1]]
        else:
            parent[target[-1]] = data.draw(_JSON)
    _check(_write(tmp / "bad.qfx.npz", _with_doc(members, doc)))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_array_and_byte_corruptions_are_value_errors(graphs, tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("b")
    src = save_graph(graphs["cnn"], tmp / "m.qfx.npz")
    members = _members(src)
    keys = sorted(k for k in members if k != "__graph__.npy")
    kind = data.draw(st.sampled_from(["array", "bytes", "truncate"]))
    if kind == "array":
        key = data.draw(st.sampled_from(keys))
        dtype = data.draw(st.sampled_from([np.float32, np.float64, np.int8, np.uint64, np.bool_,
                                           np.int64]))
        shape = tuple(data.draw(st.lists(st.integers(0, 5), max_size=4)))
        members[key] = _npy(torch.zeros(shape).numpy().astype(dtype) + data.draw(
            st.integers(0, 3)))
        path = _write(tmp / "bad.qfx.npz", members)
    else:
        blob = bytearray(src.read_bytes())
        if kind == "truncate":
            blob = blob[:data.draw(st.integers(0, len(blob) - 1))]
        else:
            for _ in range(data.draw(st.integers(1, 8))):
                blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
        path = tmp / "bad.qfx.npz"
        path.write_bytes(bytes(blob))
    _check(path)
