"""`FixedQuantizer`: a torch module that quantises to ap_fixed with a learned binary point."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from qfx.fixed.exact import quantize_double
from qfx.fixed.fake_quant import fake_quantize, relu_fake_quantize
from qfx.fixed.fixed_type import FixedType

__all__ = ["FixedQuantizer", "calibration"]

# Per-batch sample kept while observing activations for calibration (per tensor / per channel).
_OBSERVE_SAMPLES = 1 << 16
_OBSERVE_SAMPLES_PER_CHANNEL = 1 << 12


class FixedQuantizer(nn.Module):
    """Quantise a tensor to ``ap_fixed<width, I>`` where the binary point (I) is learned.

    In training mode the forward pass is a float fake-quantisation with a straight-through
    estimator, and ``log2_lsb`` (log2 of the step, ``I - width``) receives the TQT/LSQ
    quantisation-error gradient. In eval mode the result is exactly
    ``FixedType.quantize`` (float64). If no ``int_bits`` is given, the binary point is
    calibrated from the first training batch (MSE over candidate ``int_bits``), or earlier
    by :meth:`calibrate` / :func:`calibration`.

    Example:
        >>> q = FixedQuantizer(width=8, signed=True, rounding="RND", overflow="SAT")
        >>> q.calibrate(torch.linspace(-3, 3, 1000))
        >>> q.fixed_type.cpp()
        'ap_fixed<8,3,AP_RND,AP_SAT>'
        >>> y = q.eval()(torch.tensor([0.1]))  # exact ap_fixed value, float64
    """

    def __init__(
        self,
        width: int = 8,
        signed: bool = True,
        rounding: str = "RND",
        overflow: str = "SAT",
        sat_bits: int = 0,
        *,
        int_bits: int | None = None,
        learn_binary_point: bool = True,
        per_channel: bool = False,
        num_channels: int | None = None,
        channel_dim: int = 0,
    ) -> None:
        super().__init__()
        # Validates width and modes once, with FixedType's error messages.
        proto = FixedType(width, 0 if int_bits is None else int_bits, signed, rounding, overflow,
                          sat_bits)
        self.width = proto.width
        self.signed = proto.signed
        self.rounding = proto.rounding
        self.overflow = proto.overflow
        self.sat_bits = proto.sat_bits
        self.per_channel = per_channel
        self.channel_dim = channel_dim
        if per_channel and (num_channels is None or num_channels < 1):
            raise ValueError("a per-channel FixedQuantizer needs num_channels >= 1")
        shape = (num_channels,) if per_channel else ()
        start = float((int_bits if int_bits is not None else 1) - self.width)
        p = torch.full(shape, start)
        if learn_binary_point:
            self.log2_lsb = nn.Parameter(p)
        else:
            self.register_buffer("log2_lsb", p)
        self.register_buffer("initialized", torch.tensor(int_bits is not None))
        # Host-side mirror of ``initialized`` once it is True, so the training forward does not
        # read a device tensor back every step (a host-device synchronisation on a GPU).
        self._ready = int_bits is not None
        self.enabled = True
        self._observed: list[torch.Tensor] | None = None
        # cover(): the largest magnitude seen in training, which the format always holds
        self.covers = False
        self.register_buffer("range_seen", None, persistent=False)

    # ------------------------------------------------------------------ formats
    @property
    def int_bits(self) -> int | list[int]:
        """Current integer bits (an int, or one per channel)."""
        i = (torch.round(self.log2_lsb.detach()) + self.width).to(torch.int64).cpu()
        return i.tolist() if self.per_channel else int(i)

    @property
    def fixed_type(self) -> FixedType:
        """The FixedType the exporter emits (per-tensor quantizers only; see ``fixed_types``)."""
        if self.per_channel:
            raise ValueError(
                "this quantizer is per-channel: use .fixed_types (one FixedType per channel)"
            )
        return self._type(self.int_bits)

    @property
    def fixed_types(self) -> tuple[FixedType, ...]:
        """One FixedType per channel (a 1-tuple for a per-tensor quantizer)."""
        bits = self.int_bits
        return tuple(self._type(i) for i in (bits if isinstance(bits, list) else [bits]))

    def _type(self, int_bits: int) -> FixedType:
        return FixedType(self.width, int_bits, self.signed, self.rounding, self.overflow,
                         self.sat_bits)

    def extra_repr(self) -> str:
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        return (f"{kind}<{self.width}, I={self.int_bits}>, {self.rounding}, {self.overflow}"
                f"{', per_channel' if self.per_channel else ''}")

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if self._observed is not None:
            self._observe(x)
            return x
        if not self._is_ready():
            if not self.training:
                raise RuntimeError(
                    f"{type(self).__name__} used in eval mode before its binary point was set: "
                    "calibrate it (qfx.calibration / quantize_model with data), train it, "
                    "or give int_bits"
                )
            self.calibrate(x)
        if not self.training:
            return self.quantize_exact(x)
        if self.covers:
            self._hold_range(x)
        return self._fake_quantize(x)

    def cover(self) -> FixedQuantizer:
        """Make the format hold every value this quantizer sees in training: after each training
        batch its range is raised (never lowered) to cover the largest magnitude seen so far;
        the binary point is still learned above that floor. For a model's logits: once the
        softmax is confident, clipping them costs the cross-entropy almost nothing (nothing
        holds the range up against the rounding-error gradient), yet two clipped logits tie
        the argmax. Returns ``self``.

        Example:
            >>> q = FixedQuantizer(8, int_bits=2).cover()
            >>> _ = q.train()(torch.tensor([-20.0, 3.0]))
            >>> q.int_bits  # 2**5 > 20: six integer bits with the sign
            6
        """
        self.covers = True
        return self

    @torch.no_grad()
    def _hold_range(self, x: torch.Tensor) -> None:
        """Raise the range floor to ``max|x|`` (on the device: no host synchronisation) and
        lift the format to it."""
        amax = self._channel_amax(x.detach())
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(amax, op=dist.ReduceOp.MAX)  # every rank keeps the same format
        seen = amax if self.range_seen is None else torch.maximum(self.range_seen, amax)
        self.range_seen = seen
        self._lift_to(torch.where(seen > 0, torch.floor(torch.log2(seen.clamp_min(1e-300))) + 1,
                                  torch.ones_like(seen)))

    def _channel_amax(self, x: torch.Tensor) -> torch.Tensor:
        """max|x| per granule of ``log2_lsb`` (float64)."""
        a = x.abs().to(torch.float64)
        if not self.per_channel:
            return a.amax()
        return a.movedim(self.channel_dim % x.dim(), 0).reshape(self.log2_lsb.numel(), -1) \
            .amax(1).reshape(self.log2_lsb.shape)

    def _lift_to(self, top: torch.Tensor) -> None:
        """Widen the range to ``2**top`` where it is narrower (the step follows: fixed width).
        ``- 0.25``: the value rounds to the bound, Adam may move it a little below."""
        floor = (top + float(self.signed) - self.width - 0.25).to(self.log2_lsb.dtype)
        torch.maximum(self.log2_lsb.data, floor, out=self.log2_lsb.data)

    def _is_ready(self) -> bool:
        # Reads the buffer (one sync) only until it is first seen True; loading a state dict
        # resets the mirror (see _load_from_state_dict).
        if not self._ready:
            self._ready = bool(self.initialized)
        return self._ready

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._ready = False

    def _fake_quantize(self, x: torch.Tensor) -> torch.Tensor:
        """The training-mode forward (float fake quantisation with STE)."""
        return fake_quantize(
            x, self.log2_lsb, width=self.width, signed=self.signed, rounding=self.rounding,
            overflow=self.overflow, channel_dim=self.channel_dim if self.per_channel else None,
            exact_fn=self._exact_from_p if self._needs_exact_forward else None,
        )

    def quantize_relu(self, x: torch.Tensor) -> torch.Tensor:
        """``self(torch.relu(x))``, the same values and gradients; in training a cast that is
        provably the identity on ``relu(x)`` (``x`` the untouched output of a coarser or equal
        cast, see :func:`qfx.fixed.fake_quant.relu_fake_quantize`) is skipped.

        Example:
            >>> q = FixedQuantizer(8, signed=False, int_bits=2)
            >>> q.quantize_relu(torch.tensor([-1.0, 0.5])).tolist()
            [0.0, 0.5]
        """
        if (self.training and self.enabled and self._observed is None and not self.per_channel
                and type(self).forward is FixedQuantizer.forward
                and type(self)._fake_quantize is FixedQuantizer._fake_quantize
                and not self._needs_exact_forward and self._is_ready()):
            return relu_fake_quantize(x, self.log2_lsb, width=self.width, signed=self.signed,
                                      rounding=self.rounding, overflow=self.overflow)
        return self(torch.relu(x))

    @property
    def _needs_exact_forward(self) -> bool:
        return self.overflow == "WRAP_SM" or (self.overflow == "WRAP" and self.sat_bits > 0)

    def _frac_bits(self, p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        frac = (-torch.round(p)).to(torch.int64)
        if self.per_channel and frac.dim() <= 1:
            shape = [1] * x.dim()
            shape[self.channel_dim % x.dim()] = -1
            frac = frac.reshape(shape)
        return frac

    def _exact_from_p(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        frac = self._frac_bits(p.detach(), x)
        raw = quantize_double(x.detach(), frac, width=self.width, signed=self.signed,
                              rounding=self.rounding, overflow=self.overflow,
                              sat_bits=self.sat_bits)
        return torch.ldexp(raw.to(torch.float64), (-frac).to(torch.float64))

    @torch.no_grad()
    def quantize_exact(self, x: torch.Tensor) -> torch.Tensor:
        """Exactly ``FixedType.quantize`` of this quantizer's current format(s), as float64."""
        return self._exact_from_p(x, self.log2_lsb)

    @torch.no_grad()
    def to_int(self, x: torch.Tensor) -> torch.Tensor:
        """Raw int64 mantissas of ``x`` in this quantizer's current format(s)."""
        frac = self._frac_bits(self.log2_lsb, x)
        return quantize_double(x, frac, width=self.width, signed=self.signed,
                               rounding=self.rounding, overflow=self.overflow,
                               sat_bits=self.sat_bits)

    # ------------------------------------------------------------------ calibration
    def ensure_initialized(self, x: torch.Tensor) -> None:
        """Calibrate from ``x`` unless already done (for quantizers of fixed tensors: weights)."""
        if self._observed is None and not self._is_ready():
            self.calibrate(x)

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor, search: int = 8) -> None:
        """Set the binary point from data: the int_bits with the least quantisation MSE.

        Candidates run from the int_bits that just covers ``max|x|`` (no overflow) down by
        ``search`` bits (trading clipping of outliers for resolution) and one bit up.
        """
        x = x.detach().to(torch.float64)
        if self.per_channel:
            x = x.movedim(self.channel_dim % x.dim(), 0).reshape(x.shape[self.channel_dim], -1)
        self._calibrate_rows(x.reshape(x.shape[0] if self.per_channel else 1, -1), search)

    def _calibrate_rows(self, x: torch.Tensor, search: int = 8) -> None:
        """Calibrate from a [channels, samples] matrix (one row for a per-tensor quantizer)."""
        x = x.to(torch.float64)
        if x.shape[0] != self.log2_lsb.numel():
            raise ValueError(
                f"expected {self.log2_lsb.numel()} channels on dim {self.channel_dim}, "
                f"got {x.shape[0]}"
            )
        amax = x.abs().amax(dim=1)
        # int_bits covering amax: 2**(I - signed) > amax
        top = torch.where(
            amax > 0, torch.floor(torch.log2(amax.clamp(min=1e-300))) + 1 + int(self.signed),
            torch.full_like(amax, 1.0),
        ).to(torch.int64)
        best_err = torch.full_like(amax, math.inf)
        best_i = top.clone()
        for delta in range(-search, 2):
            cand = top + delta
            frac = (self.width - cand).reshape(-1, 1)
            err = ((self._candidate_values(x, frac) - x) ** 2).mean(1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best_i = torch.where(better, cand, best_i)
        p = (best_i - self.width).to(self.log2_lsb.dtype).to(self.log2_lsb.device)
        self.log2_lsb.data.copy_(p.reshape(self.log2_lsb.shape))
        self.initialized.fill_(True)
        self._ready = True

    def _candidate_values(self, x: torch.Tensor, frac: torch.Tensor) -> torch.Tensor:
        """``x`` (float64 rows) quantised with ``frac`` fractional bits per row."""
        raw = quantize_double(x, frac, width=self.width, signed=self.signed,
                              rounding=self.rounding, overflow=self.overflow,
                              sat_bits=self.sat_bits)
        return torch.ldexp(raw.to(torch.float64), (-frac).to(torch.float64))

    def _observe(self, x: torch.Tensor) -> None:
        x = x.detach()
        if self.per_channel:
            flat = x.movedim(self.channel_dim % x.dim(), 0).reshape(x.shape[self.channel_dim], -1)
            if flat.shape[1] > _OBSERVE_SAMPLES_PER_CHANNEL:
                idx = torch.randperm(flat.shape[1], device=x.device)[:_OBSERVE_SAMPLES_PER_CHANNEL]
                flat = flat[:, idx]
            self._observed.append(flat)
        else:
            flat = x.reshape(-1)
            if flat.numel() > _OBSERVE_SAMPLES:
                flat = flat[torch.randperm(flat.numel(), device=x.device)[:_OBSERVE_SAMPLES]]
            self._observed.append(flat)

    def start_observing(self) -> None:
        """Record inputs (passing them through unquantised) until :meth:`finish_observing`."""
        self._observed = []

    def finish_observing(self) -> None:
        """Calibrate from everything recorded since :meth:`start_observing`."""
        observed, self._observed = self._observed, None
        if not observed:
            return
        dim = 1 if self.per_channel else 0
        self._calibrate_rows(torch.cat(observed, dim=dim).reshape(self.log2_lsb.numel(), -1))


@contextlib.contextmanager
def calibration(module: nn.Module) -> Iterator[nn.Module]:
    """Calibrate every FixedQuantizer in ``module`` from the batches run inside the block.

    Example:
        >>> net = nn.Sequential(FixedQuantizer(8))
        >>> with calibration(net):
        ...     _ = net(torch.randn(64, 10))
        >>> net[0].int_bits
        3
    """
    quantizers = [m for m in module.modules() if isinstance(m, FixedQuantizer)]
    for q in quantizers:
        q.start_observing()
    try:
        with torch.no_grad():
            yield module
    finally:
        for q in quantizers:
            q.finish_observing()
