"""A run whose loss or weights stop being finite has diverged: it must end with an error, never save those weights
(as the model, the training state or a "complete" run), and say what was kept and what to change."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import torch

from .errors import TrainingError

DIVERGED = "diverged"  # the card's training status after such a run


class TrainingDiverged(TrainingError):
    """The loss or the weights are NaN or infinite; nothing of this step was saved."""


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    flags = [torch.isfinite(t).all() for t in tensors]
    return bool(torch.stack(flags).all()) if flags else True  # one device sync, not one per tensor


def diverged_error(step: int, loss: float, weights: bool, lr: float, best: Optional[Dict[str, Any]], out: Path,
                   state_file: Path) -> TrainingDiverged:
    what = "the weights are no longer finite" if weights else f"the loss is {loss} (not a finite number)"
    kept = []
    if best:
        kept.append(f"{out} keeps the model of epoch {best['epoch']}")
    if state_file.is_file():
        kept.append(f"{state_file} the last state saved before it")
    return TrainingDiverged(
        f"training diverged at step {step + 1}: {what}, so the run stops without saving these weights; "
        f"{' and '.join(kept) if kept else 'nothing had been saved yet'}. Lower --lr (now {lr:g}) or check the "
        "training cases, and start again with a new --out")
