"""HGQ2 side of ``bench_learned_width``: the digits CNN trained with HGQ2 at one beta.

Run in its own process with Keras 3 on the torch backend, so that Keras never shares a process
(threads, seeds, default dtype) with qfx's training::

    KERAS_BACKEND=torch python -m benchmarks.hgq2_digits --beta 1e-5 --init narrow --seed 0

prints one JSON line: ``acc`` (test accuracy of the quantized model in inference mode, after
``trace_minmax`` on the training set fixed the integer bits of the WRAP activations),
``ebops`` (HGQ2's total: every QLayer, BatchNormalization and biases included), ``ebops_mac``
(only the convolution and dense layers, the part qfx's EBOPs count), per-layer EBOPs and
``seconds``. Needs ``pip install hgq2`` (HGQ2 0.2, Keras >= 3.15).

Architecture (HGQ2's closest to ``qfx.zoo.digits_cnn``; channels-last): input 8x8x1 ->
QConv2D(8, 3, same, no bias) -> QBatchNormalization -> ReLU -> QConv2D(16, 3, same, no bias)
-> QBatchNormalization -> ReLU -> MaxPooling2D(2) -> Flatten -> QDense(10). Training as
qfx's ``train``: Adam lr 3e-3 with a per-epoch cosine decay, batch 32, cross-entropy, the
same 1,437 / 360 split of ``qfx.data.load_digits_split``, seeded shuffling.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

# the narrow initial widths: 4-bit weights (kbi, b0) and 2 fractional bits on activations
# (kif, f0), as HGQ2 starts its quantizers narrow and lets gradients widen them; "wide" is
# HGQ2's own default (b0=8; i0=2, f0=6)
INITS = {
    "narrow": {"weight": {"b0": 4, "i0": 2}, "datalane": {"i0": 2, "f0": 2}},
    "wide": {"weight": {"b0": 8, "i0": 2}, "datalane": {"i0": 2, "f0": 6}},
}


def build(beta: float, init: str):
    """The HGQ2 digits CNN with every quantizer's initial widths from ``INITS[init]``."""
    import keras
    from hgq.config import LayerConfigScope, QuantizerConfigScope
    from hgq.layers import QBatchNormalization, QConv2D, QDense

    w, d = INITS[init]["weight"], INITS[init]["datalane"]
    with (
        QuantizerConfigScope(place=("weight", "bias"), q_type="kbi", overflow_mode="SAT_SYM",
                             **w),
        QuantizerConfigScope(place="datalane", q_type="kif", overflow_mode="WRAP", **d),
        LayerConfigScope(enable_ebops=True, beta0=beta),
    ):
        inp = keras.Input((8, 8, 1))
        x = inp
        for ch in (8, 16):
            x = QConv2D(ch, 3, padding="same", use_bias=False, parallelization_factor=1)(x)
            x = QBatchNormalization()(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.Flatten()(x)
        out = QDense(10)(x)
    return keras.Model(inp, out)


def run(beta: float, init: str, seed: int, epochs: int, lr: float = 3e-3,
        batch_size: int = 32) -> dict:
    """Train one HGQ2 model; accuracy and EBOPs after ``trace_minmax``."""
    import keras
    import numpy as np
    from hgq.layers import QBatchNormalization, QConv2D, QDense, QLayerBase
    from hgq.utils import trace_minmax
    from keras import ops

    from qfx.data import load_digits_split

    keras.utils.set_random_seed(seed)
    train_set, test_set = load_digits_split()
    xtr, ytr = (t.numpy() for t in train_set.tensors)
    xte, yte = (t.numpy() for t in test_set.tensors)
    xtr, xte = xtr.transpose(0, 2, 3, 1), xte.transpose(0, 2, 3, 1)  # NCHW -> NHWC
    model = build(beta, init)
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    sched = keras.callbacks.LearningRateScheduler(
        lambda e: lr * 0.5 * (1.0 + math.cos(math.pi * e / epochs)))
    t0 = time.perf_counter()
    model.fit(xtr, ytr, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
              callbacks=[sched])
    seconds = time.perf_counter() - t0
    trace_minmax(model, xtr, batch_size=1024)
    logits = np.asarray(model.predict(xte, batch_size=1024, verbose=0))
    acc = float((logits.argmax(1) == yte).mean())
    layers = {}
    for layer in model._flatten_layers():
        if isinstance(layer, QLayerBase) and layer.enable_ebops:
            layers[layer.name] = (float(ops.convert_to_numpy(layer._ebops)),
                                  isinstance(layer, (QConv2D, QDense)),
                                  isinstance(layer, QBatchNormalization))
    return {"acc": acc, "ebops": sum(v[0] for v in layers.values()),
            "ebops_mac": sum(v[0] for v in layers.values() if v[1]),
            "layers": {k: v[0] for k, v in layers.items()}, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--beta", type=float, required=True)
    ap.add_argument("--init", choices=sorted(INITS), default="narrow")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if os.environ.get("KERAS_BACKEND") != "torch":
        raise SystemExit("run with KERAS_BACKEND=torch (Keras 3 on the torch backend)")
    import torch

    torch.set_num_threads(args.threads)
    print(json.dumps(run(args.beta, args.init, args.seed, args.epochs)))


if __name__ == "__main__":
    main()
