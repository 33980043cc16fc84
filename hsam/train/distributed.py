"""Multi-GPU / multi-node training with PyTorch DDP: the same ``hsam train`` command under ``torchrun``.

Joining the process group and picking each process's GPU are in ``hsam/distributed.py`` (shared with
``hsam segment``). Training gives each process its share of every global batch, averages gradients through DDP,
sums the Dice terms over all processes (below), and lets rank 0 alone validate, write checkpoints and report.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from ..distributed import is_initialized


class _AllReduceSum(torch.autograd.Function):
    """y = Σ_processes x. Every process uses y, so the gradient of x is the sum of all processes' gradients."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Differentiable sum over processes (identity in a single process)."""
    if not is_initialized():
        return t
    return _AllReduceSum.apply(t)
