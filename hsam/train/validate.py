"""Validation Dice per organ, on whole held-out cases.

For each validation case, the fused prediction (argmax) of its evenly spaced slices is compared with the labels at
the model's input resolution; Dice is computed over all those slices together (a 3D Dice of the sampled slices),
only for the organs present in that case's labels, then averaged per organ over the cases. The mean over organs
picks the best model.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch


@torch.no_grad()
def case_dice(model: torch.nn.Module, batches: Iterable[Tuple[torch.Tensor, torch.Tensor]], num_classes: int,
              device: torch.device) -> np.ndarray:
    """Dice per class (index 1..C-1; NaN where the case's labels lack the class)."""
    intersection = np.zeros(num_classes)
    predicted = np.zeros(num_classes)
    truth = np.zeros(num_classes)
    for x, y in batches:
        pred = model(x.to(device))["fused"].argmax(dim=1).cpu()
        y = y.long()
        hits = pred[pred == y]
        intersection += np.bincount(hits.numpy().ravel(), minlength=num_classes)[:num_classes]
        predicted += np.bincount(pred.numpy().ravel(), minlength=num_classes)[:num_classes]
        truth += np.bincount(y.numpy().ravel(), minlength=num_classes)[:num_classes]
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(truth > 0, 2 * intersection / (predicted + truth), np.nan)
    return dice[1:]


def summarize(per_case: Sequence[np.ndarray], organ_names: Sequence[str]) -> Dict[str, object]:
    """{"per_organ": {name: mean Dice or None}, "mean": mean over organs with a value}."""
    table = np.stack(per_case) if per_case else np.full((1, len(organ_names)), np.nan)
    per_organ: Dict[str, Optional[float]] = {}
    for j, name in enumerate(organ_names):
        column = table[:, j][~np.isnan(table[:, j])]
        per_organ[name] = round(float(column.mean()), 4) if column.size else None
    values: List[float] = [v for v in per_organ.values() if v is not None]
    return {"per_organ": per_organ, "mean": round(float(np.mean(values)), 4) if values else 0.0}
