"""Data generation for data-free PTQ (after DGH, Dikstein et al. 2024).

:func:`generate_calibration_data` makes ``n`` synthetic inputs from a float model's BatchNorm
statistics: every image is a parameter, and all ``n`` of them are optimised *jointly* (the
statistics of each BatchNorm's input are taken over the whole set at every step, not batch by
batch) to minimise

- the BatchNorm statistics loss: for every BatchNorm layer,
  ``||mean - running_mean||^2 + ||std - sqrt(running_var)||^2`` (averaged over channels);
- an image prior: total variation (``tv_weight``), which favours smooth images;
- DGH's output distribution-stretching loss (``output_weight``): the reciprocal of the mean,
  over the set, of each image's output range ``max(out) - min(out)`` (the paper's min-max
  difference), so that every image's logits stretch apart instead of collapsing onto a flat,
  low-confidence output that calibrates the last layers badly.

Each step sees the images through augmentations that mimic training: a random shift of up to
``shift`` pixels (zero-filled) and, if ``flip``, random horizontal flips. Runs on CUDA when
available (``device``), else on the CPU (fine for small models). Deterministic for a ``seed``
on one device. The set can be saved as ``.npz`` (``save``) with ``kind = "generated"`` and
reloaded with :func:`load_calibration_data`; reports label it as generated data.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["generate_calibration_data", "load_calibration_data", "save_calibration_data",
           "bn_statistics_loss"]


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.track_running_stats and m.running_mean is not None]


class _BNHooks:
    def __init__(self, bns: list[nn.Module]) -> None:
        self.losses: list[torch.Tensor] = []
        self.handles = [bn.register_forward_pre_hook(self._hook) for bn in bns]

    def _hook(self, bn: nn.Module, args: tuple) -> None:
        x = args[0]
        dims = [0] + list(range(2, x.dim()))
        var, mean = torch.var_mean(x, dims, unbiased=False)
        std = torch.sqrt(var + bn.eps)
        ref_std = torch.sqrt(bn.running_var + bn.eps)
        self.losses.append(((mean - bn.running_mean) ** 2).mean()
                           + ((std - ref_std) ** 2).mean())

    def take(self) -> torch.Tensor:
        out, self.losses = torch.stack(self.losses).sum(), []
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@torch.no_grad()
def bn_statistics_loss(model: nn.Module, x: torch.Tensor) -> float:
    """The BatchNorm statistics loss of ``x`` (one set) under ``model`` (eval mode)."""
    model = model.eval()
    hooks = _BNHooks(_bn_layers(model))
    try:
        model(x)
        return float(hooks.take())
    finally:
        hooks.close()


def _augment(x: torch.Tensor, gen: torch.Generator, shift: int, flip: bool) -> torch.Tensor:
    if shift > 0:
        dy, dx = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=gen))
        h, w = x.shape[-2:]
        x = nn.functional.pad(x, (shift, shift, shift, shift))
        x = x[..., shift + dy:shift + dy + h, shift + dx:shift + dx + w]
    if flip:
        mask = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
        x = torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)
    return x


def _tv(x: torch.Tensor) -> torch.Tensor:
    return ((x[..., 1:, :] - x[..., :-1, :]).abs().mean()
            + (x[..., :, 1:] - x[..., :, :-1]).abs().mean())


def generate_calibration_data(
    float_model: nn.Module,
    n: int,
    input_shape: tuple[int, ...],
    *,
    iterations: int = 500,
    lr: float = 0.1,
    tv_weight: float = 1e-2,
    output_weight: float = 1e-3,
    shift: int = 1,
    flip: bool = False,
    value_range: tuple[float, float] | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    save: str | Path | None = None,
    progress: bool = True,
    return_losses: bool = False,
) -> Any:
    """``n`` synthetic inputs of shape ``input_shape`` for calibrating ``float_model``.

    ``value_range``: clamp the images to the data's range (e.g. ``(0, 0.5)`` for qfx digits)
    after every step. Returns a float32 CPU tensor [n, *input_shape] (and, with
    ``return_losses``, a dict of the BatchNorm-statistics loss before and after and the loss
    history). See the module docstring for the losses and augmentations.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (statistics need a set), got {n!r}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations!r}")
    dev = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    model = float_model.to(dev).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    bns = _bn_layers(model)
    if not bns:
        raise ValueError(f"{type(float_model).__name__} has no BatchNorm layer with running "
                         "statistics: data generation matches BatchNorm statistics; use real "
                         "data (or noise, knowingly)")
    gen = torch.Generator().manual_seed(seed)
    init = torch.randn((n, *input_shape), generator=gen)
    if value_range is not None:
        lo, hi = value_range
        init = lo + (hi - lo) * torch.rand((n, *input_shape), generator=gen)
    x = init.to(dev).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    hooks = _BNHooks(bns)
    history: list[float] = []
    try:
        before = bn_statistics_loss(model, x.detach())
        steps = range(iterations)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="generating calibration data", leave=False)
        for _ in steps:
            opt.zero_grad(set_to_none=True)
            images = len(input_shape) == 3
            out = model(_augment(x, gen, shift, flip) if images else x)
            bn = hooks.take()
            z = out.reshape(n, -1)
            stretch = 1.0 / ((z.amax(1) - z.amin(1)).mean() + 1e-6)
            loss = bn + tv_weight * (_tv(x) if images else 0.0) \
                + output_weight * stretch
            loss.backward()
            opt.step()
            sched.step()
            if value_range is not None:
                with torch.no_grad():
                    x.clamp_(*value_range)
            history.append(float(bn.detach()))
        hooks.close()
        after = bn_statistics_loss(model, x.detach())
    finally:
        hooks.close()
    data = x.detach().float().cpu()
    if save is not None:
        save_calibration_data(save, data, kind="generated",
                              info={"seed": seed, "iterations": iterations,
                                    "bn_loss_before": before, "bn_loss_after": after})
    if return_losses:
        return data, {"bn_loss_before": before, "bn_loss_after": after, "history": history}
    return data


def save_calibration_data(path: str | Path, x: torch.Tensor, *, kind: str,
                          info: dict[str, Any] | None = None) -> Path:
    """Write a calibration set as ``.npz`` (array ``x``, string ``kind``; no pickle)."""
    from qfx.atomic import atomic_write_bytes

    buf = io.BytesIO()
    extra = {k: np.asarray(v) for k, v in (info or {}).items()}
    np.savez_compressed(buf, x=np.asarray(x, dtype=np.float32), kind=np.asarray(kind), **extra)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_calibration_data(path: str | Path) -> tuple[torch.Tensor, str]:
    """(inputs, kind) of a set written by :func:`save_calibration_data`."""
    with np.load(Path(path), allow_pickle=False) as z:
        if "x" not in z:
            raise ValueError(f"{path}: not a qfx calibration set (no array 'x')")
        kind = str(z["kind"]) if "kind" in z else "real"
        return torch.from_numpy(z["x"].astype(np.float32)), kind
