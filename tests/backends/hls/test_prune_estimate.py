"""The HLS estimate of a model with zero-width channels drops once freeze prunes them."""

from __future__ import annotations

from builders import pruned_width_net

import qfx
from qfx.backends.hls.estimate import estimate_resources


def test_pruned_channels_lower_the_estimate():
    net, x = pruned_width_net()
    full, pruned = qfx.freeze(net, x[:1], prune=False), qfx.freeze(net, x[:1])
    for io in ("parallel", "stream"):
        before = estimate_resources(full, reuse=4, io=io).total
        after = estimate_resources(pruned, reuse=4, io=io).total
        assert after.dsp < before.dsp and after.latency_cycles <= before.latency_cycles
