"""Low-rank adapters on the q and v projections of a fused qkv Linear (SAMed / H-SAM style).

The update is unscaled (no alpha/r) and without dropout, as in the released code: q += B_q A_q x, v += B_v A_v x.
A starts kaiming-uniform and B at zero, so a fresh adapter is the identity. ``merge_lora`` folds B·A into the frozen
weight so inference runs the plain backbone at no extra cost.
"""
from __future__ import annotations

import math
from typing import Iterator, List, Tuple

import torch
import torch.nn as nn


class LoRAQKV(nn.Module):
    """Wraps a fused ``qkv`` Linear; q_index / v_index name its output channels that hold q and v."""

    def __init__(self, qkv: nn.Linear, rank: int, q_index: torch.Tensor, v_index: torch.Tensor) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.qkv = qkv
        self.rank = rank
        dim = qkv.in_features
        self.register_buffer("q_index", q_index.long(), persistent=False)
        self.register_buffer("v_index", v_index.long(), persistent=False)
        self.a_q = nn.Linear(dim, rank, bias=False)
        self.b_q = nn.Linear(rank, len(q_index), bias=False)
        self.a_v = nn.Linear(dim, rank, bias=False)
        self.b_v = nn.Linear(rank, len(v_index), bias=False)
        for a in (self.a_q, self.a_v):
            nn.init.kaiming_uniform_(a.weight, a=math.sqrt(5))
        for b in (self.b_q, self.b_v):
            nn.init.zeros_(b.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.qkv(x)
        out = out.index_add(-1, self.q_index, self.b_q(self.a_q(x)))
        return out.index_add(-1, self.v_index, self.b_v(self.a_v(x)))

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain Linear equal to this module's forward."""
        merged = nn.Linear(self.qkv.in_features, self.qkv.out_features, bias=self.qkv.bias is not None)
        merged = merged.to(device=self.qkv.weight.device, dtype=self.qkv.weight.dtype)
        weight = self.qkv.weight.clone()
        weight.index_add_(0, self.q_index, self.b_q.weight @ self.a_q.weight)
        weight.index_add_(0, self.v_index, self.b_v.weight @ self.a_v.weight)
        merged.weight.copy_(weight)
        if self.qkv.bias is not None:
            merged.bias.copy_(self.qkv.bias)
        merged.weight.requires_grad_(False)
        if merged.bias is not None:
            merged.bias.requires_grad_(False)
        return merged


def apply_lora(targets: List[Tuple[nn.Module, torch.Tensor, torch.Tensor]], rank: int) -> List[LoRAQKV]:
    """Replace each target module's ``qkv`` by a LoRAQKV; targets come from ``Backbone.lora_targets()``."""
    wrapped = []
    for attn, q_index, v_index in targets:
        if isinstance(attn.qkv, LoRAQKV):
            raise RuntimeError("LoRA is already applied to this backbone")
        attn.qkv = LoRAQKV(attn.qkv, rank, q_index, v_index)
        wrapped.append(attn.qkv)
    return wrapped


def last_blocks(targets: List[Tuple[nn.Module, torch.Tensor, torch.Tensor]],
                blocks: int) -> List[Tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """The targets of the encoder's last ``blocks`` attention blocks (targets are in forward order); 0: all."""
    if blocks > len(targets):
        raise ValueError(f"LoRA in the last {blocks} attention blocks: this encoder has {len(targets)}")
    return targets[-blocks:] if blocks else targets


def lora_modules(root: nn.Module) -> Iterator[Tuple[str, LoRAQKV]]:
    for name, module in root.named_modules():
        if isinstance(module, LoRAQKV):
            yield name, module


def merge_lora(root: nn.Module) -> int:
    """Fold every adapter under ``root`` into its qkv weight; returns how many were merged."""
    merged = 0
    for name, module in list(lora_modules(root)):
        parent_name, _, attr = name.rpartition(".")
        parent = root.get_submodule(parent_name) if parent_name else root
        setattr(parent, attr, module.merged())
        merged += 1
    return merged
