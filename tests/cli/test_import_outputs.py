"""``qfx import``: the import-time check line against the source model, ``--check 0``, and
``--graph-output NAME`` (a wrong name is one error line naming the available outputs)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from qfx.cli import main
from qfx.ir import load_graph


def _two_outputs(path) -> None:
    dom = "qonnx.custom_op.general"
    consts = {"s": np.float32(2.0**-4), "z": np.float32(0), "b": np.float32(8)}
    nodes = [helper.make_node("Quant", ["x", "s", "z", "b"], ["q"], domain=dom, signed=1,
                              narrow=0, rounding_mode="ROUND"),
             helper.make_node("Relu", ["q"], ["r"])]
    f32 = TensorProto.FLOAT
    g = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("x", f32, [1, 3])],
                          [helper.make_tensor_value_info(n, f32, [1, 3]) for n in ("q", "r")],
                          [numpy_helper.from_array(v, k) for k, v in consts.items()])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13),
                                                  helper.make_opsetid(dom, 1)]), str(path))


def test_import_reports_the_check_and_picks_outputs(tmp_path, capsys):
    src = tmp_path / "two.onnx"
    _two_outputs(src)
    out = tmp_path / "all.qfx.npz"
    assert main(["import", str(src), "-o", str(out), "--check", "4"]) == 0
    assert "qfx == qonnx on 4 random samples" in capsys.readouterr().out
    assert len(load_graph(out).outputs) == 2
    out = tmp_path / "r.qfx.npz"
    assert main(["import", str(src), "-o", str(out), "--check", "0",
                 "--graph-output", "r"]) == 0
    assert "qfx ==" not in capsys.readouterr().out
    assert len(load_graph(out).outputs) == 1
    assert main(["import", str(src), "-o", str(tmp_path / "x.qfx.npz"),
                 "--graph-output", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("'nope' is not a computed graph output; "
                                             "available: q, r")
