"""Errors of a training job: bad inputs (reported before any training) and a requested stop."""
from __future__ import annotations

from ..stop import StopRequested


class TrainingError(ValueError):
    """Training cannot start or go on; the message says what is wrong and what to do."""


class TrainingStopped(StopRequested):
    """Training stopped on request (SIGINT, SIGTERM or the stop file) after saving a checkpoint; ``--resume``
    continues it."""

    def __init__(self, checkpoint: str, step: int) -> None:
        super().__init__(f"training stopped at step {step}; state saved to {checkpoint} (continue with --resume)")
        self.checkpoint = checkpoint
        self.step = step
