"""How a training job ends other than well: bad inputs (reported before any training), a run that diverged, and a
requested stop.

A run whose loss or weights stop being finite has diverged: it must end with an error, never save those weights
(as the model, the training state or a "complete" run), and say what was kept and what to change.

No torch here (``all_finite`` only calls the tensors' own methods): ``import hsam.train``, which brings these errors and
the settings, stays light."""
from __future__ import annotations

import functools
import operator
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

from ..stop import StopRequested

DIVERGED = "diverged"  # the card's training status after a run diverged


class TrainingError(ValueError):
    """Training cannot start or go on; the message says what is wrong and what to do."""


class TrainingDiverged(TrainingError):
    """The loss or the weights are NaN or infinite; nothing of this step was saved."""


class TrainingStopped(StopRequested):
    """Training stopped on request (SIGINT, SIGTERM or the stop file) after saving a checkpoint; ``--resume``
    continues it."""

    def __init__(self, checkpoint: str, step: int) -> None:
        super().__init__(f"training stopped at step {step}; state saved to {checkpoint} (continue with --resume)")
        self.checkpoint = checkpoint
        self.step = step


def all_finite(tensors: Iterable[Any]) -> bool:
    """Every value of every tensor is finite."""
    flags = [t.isfinite().all() for t in tensors]
    return bool(functools.reduce(operator.and_, flags)) if flags else True  # one device sync, not one per tensor


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
