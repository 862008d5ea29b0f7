"""Channel pruning never makes the HLS resource ESTIMATE larger at the same reuse (issue #16),
except where a memory changes kind or a bias widens (below).

For random small MLPs and CNNs with random output channels made constant (zero weights and a
bias: a learned width of 0), the pruned graph (:func:`qfx.ir.prune.prune_channels`) is compared
with the unpruned one's, in both architectures and at several reuse factors (and the
learned-width model of ``builders.pruned_width_net`` at six, every resource strictly):

* DSPs never rise: the fold of a shorter reduction or fewer outputs never has more multipliers
  (:func:`qfx.backends.hls.reuse.fold`; but at the 4096-multiplier unroll cap, where
  ``K * (4096 // K)`` can fall by a few as K grows: not reached by these small models), and the
  true multiplications only fall;
* LUT, FF and BRAM18K never rise, but for the two documented cases where the C++ really builds
  something else, which the test measures (1) or bounds (2) and allows:

  1. an activation array (``io="parallel"``) whose size or banking changes with the pruning can
     change its implementation (registers up to 2 words deep per bank, LUTRAM below 1,024 bits,
     else BRAM18K): the resource it moves to rises, the one it leaves falls; the test allows
     the rise of each array only into a kind the array did not use before;
  2. a bias that absorbs a dropped constant channel's contribution (``w * c`` folded exactly)
     can need a wider bias type: its ROM is wider, at most one LUT per output channel and bit.

A layer whose constants sit in a ROM used to count ``ceil(additions / ii)`` adders (the
average over the sequential output-channel loop): zero channels then looked like saved adders
and the pruned layer, with the same lanes and a shorter loop, looked larger; it now counts the
adders its lanes build (:func:`qfx.backends.hls.rules.mac_adders`).
"""

from __future__ import annotations

import pytest
import torch
from builders import pruned_width_net
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import qfx
from qfx.backends.hls.estimate import EstimateModel, estimate_resources
from qfx.fixed.hwcost import DSP_LUT_EQUIV
from qfx.ir.prune import prune_channels
from qfx.nn import QBatchNorm2d, QConfig, QConv2d, QFlatten, QInput, QLinear, QMaxPool2d, QReLU

RESOURCES = ("lut", "ff", "dsp", "bram18k")


@pytest.mark.parametrize("io", ["parallel", "stream"])
def test_the_learned_width_model_is_smaller_pruned_at_every_reuse(io):
    """The learned-width model with zero-width channels (builders.pruned_width_net): every
    resource of the pruned graph is at most the unpruned one's at every reuse (before the adder
    count followed the lanes, the parallel design's FF, and at reuse 1 and 2 its LUT, rose)."""
    net, x = pruned_width_net()
    full, pruned = qfx.freeze(net, x[:1], prune=False), qfx.freeze(net, x[:1])
    for reuse in (1, 2, 4, 9, 27, 128):
        a = estimate_resources(full, reuse=reuse, io=io).total
        b = estimate_resources(pruned, reuse=reuse, io=io).total
        for k in RESOURCES:
            assert getattr(b, k) <= getattr(a, k), (reuse, k, getattr(a, k), getattr(b, k))
        # the multipliers saved: DSPs, or their LUTs where the products fit the fabric
        assert b.lut + DSP_LUT_EQUIV * b.dsp < a.lut + DSP_LUT_EQUIV * a.dsp or reuse == 128


def _model(data: st.DataObject) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(data.draw(st.integers(0, 2**16), label="seed"))
    cfg = QConfig(act_width=data.draw(st.sampled_from([4, 6, 8]), label="act_width"),
                  weight_width=data.draw(st.sampled_from([3, 5, 8]), label="weight_width"))
    with qfx.config(cfg):
        if data.draw(st.booleans(), label="cnn"):
            c0, c1, c2 = (data.draw(st.integers(lo, 6), label=f"c{i}")
                          for i, lo in enumerate((1, 2, 2)))
            hw = data.draw(st.integers(4, 6), label="hw")
            k = data.draw(st.sampled_from([1, 3]), label="k")
            layers = [QInput(8), QConv2d(c0, c1, k, padding=k // 2)]
            if data.draw(st.booleans(), label="bn"):
                layers.append(QBatchNorm2d(c1))
            layers.append(QReLU())
            if data.draw(st.booleans(), label="pool"):
                layers.append(QMaxPool2d(2))
                hw2 = hw // 2
            else:
                hw2 = hw
            layers += [QConv2d(c1, c2, 3, padding=1), QReLU(), QFlatten(),
                       QLinear(c2 * hw2 * hw2, data.draw(st.integers(1, 3), label="n_out"))]
            x = torch.randn(16, c0, hw, hw)
        else:
            widths = data.draw(st.lists(st.integers(1, 12), min_size=3, max_size=4),
                               label="widths")
            layers = [QInput(8)]
            for n_in, n_out in zip(widths, widths[1:], strict=False):
                layers += [QLinear(n_in, n_out), QReLU()]
            layers.pop()
            x = torch.randn(16, widths[0])
        net = nn.Sequential(*layers)
    net.train()
    net(x)  # BatchNorm statistics
    net.eval()
    with torch.no_grad():
        for m in [m for m in net if isinstance(m, (QLinear, QConv2d))][:-1]:
            dead = data.draw(st.lists(st.booleans(), min_size=m.weight.shape[0],
                                      max_size=m.weight.shape[0]), label="constant channels")
            for c, d in enumerate(dead):
                if d:
                    m.weight[c] = 0.0
                    m.bias[c] = data.draw(st.sampled_from([0.0, 0.25, -0.5]), label="bias")
    with qfx.calibration(net):
        net(x)
    return net, x


def _arrays(m: EstimateModel, reuse: int) -> dict[str, dict[str, int]]:
    """Each activation array's estimate (io=parallel), the graph's input ports included."""
    g = m.graph
    shapes = {n.name: m.shape(n.name, reuse) for n in g.nodes}
    readers = m.read_lanes(shapes)
    banks = {e: readers.get(e, 1) for e in g.inputs}
    for n in g.nodes:
        if not m.schedule.rules[n.name].aliases:
            banks[n.output] = max(shapes[n.name].write_lanes, readers.get(n.output, 1))
    return {e: m.array(e, b).as_dict() for e, b in banks.items()}


def _bias_widening(full: qfx.Graph, pruned: qfx.Graph) -> int:
    """LUTs (an upper bound: one per output channel and bit) of the biases the pruning widened."""
    extra = 0
    for node in pruned.nodes:
        t, t0 = node.attrs.get("bias_type"), full.node(node.name).attrs.get("bias_type")
        if t is not None and t0 is not None and t.width > t0.width:
            extra += int(node.params["bias"].size) * (t.width - t0.width)
    return extra


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_pruning_never_raises_the_estimate_at_the_same_reuse(data):
    net, x = _model(data)
    full = qfx.freeze(net, x[:1], prune=False)
    pruned = prune_channels(full)
    reuses = data.draw(st.lists(st.sampled_from([1, 2, 3, 5, 8, 64]), min_size=1, max_size=2,
                                unique=True), label="reuse")
    for io in ("parallel", "stream"):
        mf, mp = EstimateModel(full, io=io), EstimateModel(pruned, io=io)
        for reuse in reuses:
            a, b = mf.report(reuse).total.as_dict(), mp.report(reuse).total.as_dict()
            a, b = ({k.lower(): v for k, v in d.items()} for d in (a, b))
            allow = dict.fromkeys(RESOURCES, 0)
            if io == "parallel":
                arr_f, arr_p = _arrays(mf, reuse), _arrays(mp, reuse)
                for edge, p in arr_p.items():
                    f = {k.lower(): v for k, v in arr_f[edge].items()}
                    p = {k.lower(): v for k, v in p.items()}
                    for k in ("lut", "ff", "bram18k"):
                        if p[k] > f[k]:  # only a change of kind: into one the array did not use
                            assert f[k] == 0, (io, reuse, edge, k, f, p)
                            allow[k] += p[k]
            allow["lut"] += _bias_widening(full, pruned)
            for k in RESOURCES:
                assert b[k] <= a[k] + allow[k], (io, reuse, k, a[k], b[k], allow[k])
