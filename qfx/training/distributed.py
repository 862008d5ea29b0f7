"""Distributed data-parallel training on ``torch.distributed``: local process launch
(``qfx train CONFIG --nproc N``), ``torchrun`` environments, and the cross-rank pieces the
trainer needs (calibration from every rank's data, SyncBatchNorm semantics, reductions).

Backends: gloo on the CPU, NCCL on CUDA. ``batch_size`` is per process (the DDP convention):
N processes train on N * batch_size samples per step.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from qfx.fixed.quantizer import FixedQuantizer

__all__ = ["world", "is_distributed", "init_from_env", "launch", "backend_for",
           "calibrate_across_ranks", "all_reduce_sum", "any_rank", "barrier"]


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return world()[1] > 1


def backend_for(device: str | torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(device: str = "cpu") -> str:
    """Join the process group described by ``torchrun``'s environment (``WORLD_SIZE`` > 1,
    ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) unless already joined.
    Returns the device this rank trains on (``cuda:LOCAL_RANK`` for a CUDA device)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    dev = torch.device(device)
    if dev.type == "cuda" and size > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if size > 1 and not (dist.is_available() and dist.is_initialized()):
        dist.init_process_group(backend_for(device), init_method="env://")
    return str(device)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, nproc: int, port: int, threads: int, fn: Callable[..., Any],
            args: tuple) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(nproc),
                       "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(port)})
    torch.set_num_threads(threads)
    try:
        fn(*args)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def launch(fn: Callable[..., Any], nproc: int, args: tuple = (), *,
           threads: int | None = None) -> None:
    """Run ``fn(*args)`` in ``nproc`` fresh local processes (ranks 0..nproc-1) with a
    ``torchrun``-style environment; ``fn`` joins the group with :func:`init_from_env`.
    CPU threads per process default to ``torch.get_num_threads() // nproc`` (at least 1).
    Raises if any process fails."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    threads = threads or max(1, torch.get_num_threads() // nproc)
    mp.spawn(_worker, args=(nproc, _free_port(), threads, fn, args), nprocs=nproc, join=True)


def all_reduce_sum(*tensors: torch.Tensor) -> None:
    """Sum tensors over all ranks, in place (no-op outside a process group)."""
    if is_distributed():
        for t in tensors:
            dist.all_reduce(t)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True if ``flag`` is True on any rank (so every rank takes the same branch)."""
    if not is_distributed():
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def _all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``[rows, n_r]`` matrices of every rank along dim 1 (n_r may differ)."""
    _, size = world()
    n = torch.tensor([x.shape[1]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(size)]
    dist.all_gather(sizes, n)
    top = int(max(int(s) for s in sizes))
    padded = torch.zeros(x.shape[0], top, dtype=x.dtype, device=x.device)
    padded[:, :x.shape[1]] = x
    parts = [torch.empty_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:, :int(s)] for p, s in zip(parts, sizes, strict=True)], dim=1)


@torch.no_grad()
def calibrate_across_ranks(model: nn.Module, x: torch.Tensor) -> int:
    """Calibrate every not yet calibrated ``FixedQuantizer`` of ``model`` from the samples
    every rank observes on its own batch ``x``: the observed values are gathered from all
    ranks, so every rank picks the same binary points (the MSE search of
    ``FixedQuantizer.calibrate`` over the union of the ranks' data). Returns how many
    quantizers were calibrated. Without a process group it calibrates from ``x`` alone."""
    todo = [m for m in model.modules() if isinstance(m, FixedQuantizer) and m.enabled
            and m._observed is None and not bool(m.initialized)]
    device = x.device
    if not any_rank(bool(todo), device):
        return 0
    for q in todo:
        q.start_observing()
    try:
        model(x)
    finally:
        observed = [(q, q._observed) for q in todo]
        for q in todo:
            q._observed = None
    for q, obs in observed:
        rows = q.log2_lsb.numel()
        if obs:
            local = torch.cat(obs, dim=1 if q.per_channel else 0).reshape(rows, -1)
        else:
            local = torch.zeros(rows, 0, device=device)
        full = _all_gather_rows(local) if is_distributed() else local
        if full.shape[1]:
            q._calibrate_rows(full)
    return len(todo)
