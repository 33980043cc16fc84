"""Errors of a training job: bad inputs (reported before any training) and a requested stop."""
from __future__ import annotations


class TrainingError(ValueError):
    """Training cannot start or go on; the message says what is wrong and what to do."""


class TrainingStopped(Exception):
    """Training stopped on request (SIGTERM/SIGINT) after saving a checkpoint; ``--resume`` continues it."""

    def __init__(self, checkpoint: str, step: int) -> None:
        super().__init__(f"training stopped at step {step}; state saved to {checkpoint} (continue with --resume)")
        self.checkpoint = checkpoint
        self.step = step
