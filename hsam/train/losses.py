"""The H-SAM training loss: cross-entropy + Dice per stage, deep supervision of both stages.

Per stage, L = (1 - d)·CE + d·Dice (d = 0.9 as the released code). Dice is soft Dice on softmax probabilities with
the background included, 1 - (2Σpg + ε)/(Σp² + Σg² + ε) per class, summed over the whole batch (not per image, so
a class absent from one slice does not dominate) and averaged over classes. Stage 1 is supervised at its own output
resolution with nearest-downsampled labels (1/4 of the input for SAM ViT, full resolution for LiteMedSAM), stage 2
at its own (full) resolution. Total: λw·L1 + (1 - λw)·L2.

Under DDP the Dice sums are added over all processes (a differentiable all-reduce), so the loss and its gradients
are those of the combined batch; cross-entropy is a mean and DDP's gradient averaging already combines it.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from .distributed import all_reduce_sum

DICE_EPS = 1e-5


def labels_at(labels: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """(B, H, W) class labels resized with nearest neighbour (never interpolated between classes)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest-exact")[:, 0].long()


def dice_sums(logits: torch.Tensor, labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per class: Σ p·g and Σ p² + Σ g² over the batch."""
    probs = torch.softmax(logits.float(), dim=1)
    onehot = F.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).float()
    intersection = (probs * onehot).sum(dim=(0, 2, 3))
    denominator = (probs * probs).sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))
    return intersection, denominator


def stage_loss(logits: torch.Tensor, labels: torch.Tensor, dice_weight: float, distributed: bool = False
               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, CE, Dice loss) of one stage; ``labels`` are resized to the logits' grid."""
    labels = labels_at(labels, logits.shape[-2:])
    ce = F.cross_entropy(logits.float(), labels)
    intersection, denominator = dice_sums(logits, labels)
    if distributed:
        intersection, denominator = all_reduce_sum(intersection), all_reduce_sum(denominator)
    dice = (1.0 - (2.0 * intersection + DICE_EPS) / (denominator + DICE_EPS)).mean()
    return (1.0 - dice_weight) * ce + dice_weight * dice, ce, dice


def hsam_loss(outputs: Dict[str, torch.Tensor], labels: torch.Tensor, stage1_weight: float, dice_weight: float,
              distributed: bool = False) -> Tuple[torch.Tensor, Dict[str, float]]:
    """(total loss, parts for logging). Without stage 2 (SAMed-style models) stage 1 carries the whole loss."""
    loss1, ce1, dice1 = stage_loss(outputs["stage1"], labels, dice_weight, distributed)
    parts = {"stage1": float(loss1.detach()), "ce1": float(ce1.detach()), "dice1": float(dice1.detach())}
    if "stage2" not in outputs:
        return loss1, parts
    loss2, ce2, dice2 = stage_loss(outputs["stage2"], labels, dice_weight, distributed)
    parts.update(stage2=float(loss2.detach()), ce2=float(ce2.detach()), dice2=float(dice2.detach()))
    return stage1_weight * loss1 + (1.0 - stage1_weight) * loss2, parts
