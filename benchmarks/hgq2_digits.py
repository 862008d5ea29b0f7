"""HGQ2 side of ``bench_learned_width``: the digits CNN (or, ``--task cancer``, the
breast-cancer MLP) trained with HGQ2 at one beta.

Run in its own process with Keras 3 on the torch backend, so that Keras never shares a process
(threads, seeds, default dtype) with qfx's training::

    KERAS_BACKEND=torch python -m benchmarks.hgq2_digits --beta 1e-5 --init narrow --seed 0 \
        [--task digits|cancer]

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

``--task cancer`` (HGQ2's closest to ``qfx.zoo.cancer_mlp``): input 30 -> 2 x [QDense(32,
then 16, no bias) -> QBatchNormalization -> ReLU] -> QDense(2), trained the same way on the
455 / 114 split of ``qfx.data.load_breast_cancer_split`` (features standardised with the
training split's statistics).
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


def _digits_layers():
    """The digits CNN's input and output tensors (channels-last)."""
    import keras
    from hgq.layers import QBatchNormalization, QConv2D, QDense

    inp = keras.Input((8, 8, 1))
    x = inp
    for ch in (8, 16):
        x = QConv2D(ch, 3, padding="same", use_bias=False, parallelization_factor=1)(x)
        x = QBatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    return inp, QDense(10)(x)


def _cancer_layers():
    """The breast-cancer MLP's (``qfx.zoo.cancer_mlp``: 30-32-16-2) input and output tensors."""
    import keras
    from hgq.layers import QBatchNormalization, QDense

    inp = keras.Input((30,))
    x = inp
    for width in (32, 16):
        x = QDense(width, use_bias=False)(x)
        x = QBatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    return inp, QDense(2)(x)


def _digits_data():
    from qfx.data import load_digits_split

    return load_digits_split(), (0, 2, 3, 1)  # NCHW -> NHWC


def _cancer_data():
    from qfx.data import load_breast_cancer_split

    return load_breast_cancer_split(), None


#: task -> (the model's layers, the qfx split and the axes that make it channels-last)
TASKS = {"digits": (_digits_layers, _digits_data), "cancer": (_cancer_layers, _cancer_data)}


def build(beta: float, init: str, task: str = "digits"):
    """The HGQ2 model of ``task`` with every quantizer's initial widths from ``INITS[init]``."""
    import keras
    from hgq.config import LayerConfigScope, QuantizerConfigScope

    w, d = INITS[init]["weight"], INITS[init]["datalane"]
    with (
        QuantizerConfigScope(place=("weight", "bias"), q_type="kbi", overflow_mode="SAT_SYM",
                             **w),
        QuantizerConfigScope(place="datalane", q_type="kif", overflow_mode="WRAP", **d),
        LayerConfigScope(enable_ebops=True, beta0=beta),
    ):
        inp, out = TASKS[task][0]()
    return keras.Model(inp, out)


def run(beta: float, init: str, seed: int, epochs: int, lr: float = 3e-3,
        batch_size: int = 32, task: str = "digits") -> dict:
    """Train one HGQ2 model; accuracy and EBOPs after ``trace_minmax``."""
    import keras
    import numpy as np
    from hgq.layers import QBatchNormalization, QConv2D, QDense, QLayerBase
    from hgq.utils import trace_minmax
    from keras import ops

    keras.utils.set_random_seed(seed)
    (train_set, test_set), axes = TASKS[task][1]()
    xtr, ytr = (t.numpy() for t in train_set.tensors)
    xte, yte = (t.numpy() for t in test_set.tensors)
    if axes is not None:
        xtr, xte = xtr.transpose(*axes), xte.transpose(*axes)
    model = build(beta, init, task)
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
    ap.add_argument("--task", choices=sorted(TASKS), default="digits")
    args = ap.parse_args()
    if os.environ.get("KERAS_BACKEND") != "torch":
        raise SystemExit("run with KERAS_BACKEND=torch (Keras 3 on the torch backend)")
    import torch

    torch.set_num_threads(args.threads)
    print(json.dumps(run(args.beta, args.init, args.seed, args.epochs, task=args.task)))


if __name__ == "__main__":
    main()
