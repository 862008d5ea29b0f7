"""Fixed-point BatchNorm: a per-channel scale and shift, each with its own learned format."""

from __future__ import annotations

import torch
from torch import nn

from qfx.nn.base import QLayer
from qfx.nn.config import QConfig, current_config

__all__ = ["QBatchNorm1d", "QBatchNorm2d", "sync_batchnorm"]


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks of a process group; the gradient of a sum is the sum of the ranks'
    gradients (each rank's loss depends on every rank's inputs through the statistics)."""

    @staticmethod
    def forward(ctx, x, group):
        import torch.distributed as dist

        ctx.group = group
        x = x.clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


def _synced_var_mean(x: torch.Tensor, dims: list[int], group) -> tuple[torch.Tensor, ...]:
    """Biased variance, mean and element count per channel over the batches of every rank of
    ``group`` (SyncBatchNorm semantics): one differentiable all-reduce of the per-channel sums
    of x and x**2 and of the count, so gradients flow back to every rank's inputs."""
    c = x.shape[1]
    count = torch.full((1,), x.numel() // c, dtype=x.dtype, device=x.device)
    packed = _AllReduceSum.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]), group)
    n = packed[2 * c]
    mean = packed[:c] / n
    var = (packed[c:2 * c] / n - mean * mean).clamp_min(0.0)
    return var, mean, n


class _BatchVarMean(torch.autograd.Function):
    """Biased variance and mean per channel (dim 1) in two passes (mean, then the mean square
    of ``x - mean``), with a one-kernel backward (``x - mean`` is kept from the forward, not
    formed again): on the CPU about 2.5x faster than ``torch.var_mean`` over dims (0, 2, 3),
    forward and backward, and as accurate (the two-pass formula has no cancellation).
    Training statistics only: eval and the frozen model use the running statistics."""

    @staticmethod
    def forward(ctx, x, dims):
        mean = x.mean(dims, keepdim=True)
        centred = x - mean
        var = centred.square().mean(dims)
        ctx.save_for_backward(centred)
        return var, mean.reshape(-1)

    @staticmethod
    def backward(ctx, grad_var, grad_mean):
        (centred,) = ctx.saved_tensors
        n = centred.numel() // centred.shape[1]
        shape = [1] * centred.dim()
        shape[1] = -1
        grad_x = torch.addcmul((grad_mean / n).reshape(shape), centred,
                               (grad_var * (2.0 / n)).reshape(shape))
        return grad_x, None


def _batch_var_mean(x: torch.Tensor, dims: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.var_mean(x, dims, unbiased=False)`` for per-channel (dim 1) statistics."""
    return _BatchVarMean.apply(x, dims)


def sync_batchnorm(model: nn.Module, process_group=None) -> int:
    """Make every qfx BatchNorm in ``model`` compute its training statistics over all ranks of
    ``process_group`` (default: the whole world), as ``torch.nn.SyncBatchNorm`` does; returns
    how many layers were switched. Eval mode and the frozen graph are unchanged.

    Example:
        >>> sync_batchnorm(nn.Sequential(QBatchNorm2d(4), QBatchNorm1d(2)))
        2
    """
    n = 0
    for m in model.modules():
        if isinstance(m, _QBatchNorm):
            m.sync_stats, m.process_group = True, process_group
            n += 1
    return n


class _QBatchNorm(QLayer):
    """Trains with batch statistics; computes ``x * scale + shift`` with fixed-point scale/shift.

    ``scale = gamma / sqrt(var + eps)`` and ``shift = beta - mean * scale`` are quantised
    (per-layer formats, learned) in training too, so the network learns with the precision
    the hardware will have; eval uses the running statistics.
    """

    _dims: tuple[int, ...]

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, *,
                 scale_width: int | None = None, shift_width: int | None = None,
                 act_width: int | None = None, config: QConfig | None = None) -> None:
        super().__init__()
        cfg = config or current_config()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        if cfg.learn_widths:  # learned widths: per-channel (or finer) constants
            self.scale_quantizer = cfg.constant_quantizer(scale_width or cfg.bn_scale_width,
                                                          (num_features,))
        else:
            self.scale_quantizer = cfg.scale_quantizer(scale_width)
        self.shift_quantizer = cfg.constant_quantizer(shift_width or cfg.bn_shift_width,
                                                      (num_features,))
        self.output_quantizer = cfg.act_quantizer(act_width)
        # Set by sync_batchnorm for distributed training (not part of the state dict).
        self.sync_stats, self.process_group = False, None

    def _synced(self) -> bool:
        import torch.distributed as dist

        return (self.sync_stats and dist.is_available() and dist.is_initialized()
                and dist.get_world_size(self.process_group) > 1)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) got input of shape "
                             f"{tuple(x.shape)}")

    def scale_shift(self, mean: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor,
                                                                          torch.Tensor]:
        """Float (unquantised) scale and shift for given statistics."""
        scale = self.weight / torch.sqrt(var + self.eps)
        return scale, self.bias - mean * scale

    def quantized_scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode fixed-point scale and shift from the running statistics."""
        scale, shift = self.scale_shift(self.running_mean, self.running_var)
        self.scale_quantizer.ensure_initialized(scale)
        self.shift_quantizer.ensure_initialized(shift)
        return self.scale_quantizer(scale), self.shift_quantizer(shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        dims = [0] + list(range(2, x.dim()))
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            if self._synced():
                var, mean, n = _synced_var_mean(x, dims, self.process_group)
                n = n.detach()
            else:
                var, mean = _batch_var_mean(x, dims)
                n = x.numel() // x.shape[1]
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # in place: no module __setattr__
                m = self.momentum if self.momentum is not None else \
                    1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                denom = max(n - 1, 1) if isinstance(n, int) else (n - 1).clamp_min(1)
                unbiased = var.detach() * n / denom
                self.running_var.mul_(1 - m).add_(unbiased, alpha=m)
            scale, shift = self.scale_shift(mean, var)
            scale, shift = self.scale_quantizer(scale), self.shift_quantizer(shift)
        else:
            x = x.double()
            scale, shift = self.quantized_scale_shift()
        return self.output_quantizer(torch.addcmul(shift.view(shape), x, scale.view(shape)))


class QBatchNorm2d(_QBatchNorm):
    """Fixed-point ``nn.BatchNorm2d`` (inputs N, C, H, W).

    Example:
        >>> bn = QBatchNorm2d(4)
        >>> bn(torch.randn(8, 4, 5, 5)).shape
        torch.Size([8, 4, 5, 5])
    """

    _ndims = (4,)


class QBatchNorm1d(_QBatchNorm):
    """Fixed-point ``nn.BatchNorm1d`` (inputs N, C or N, C, L).

    Example:
        >>> QBatchNorm1d(3)(torch.randn(10, 3)).shape
        torch.Size([10, 3])
    """

    _ndims = (2, 3)
