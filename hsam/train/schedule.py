"""Schedules: the stage weight λw and the learning rate.

λw weighs stage 1 (L = λw·L1 + (1 - λw)·L2):

- "paper": starts at 0.8 and decays exponentially with coefficient 0.005 per epoch, λw = 0.8·exp(-0.005·epoch)
  (0.8 at epoch 0, 0.48 at 100, 0.18 at 300);
- "release": the released code's w2 = 0.6^(0.99^epoch), i.e. λw = 1 - 0.6^(0.99^epoch) (0.40 at epoch 0, 0.17 at
  100, 0.025 at 299); method notes §10.1.

Both curves are written for the paper's few-shot run of 300 epochs. By default (``over="run"``) the whole curve is
spread over this run's steps, the schedule's epoch being 300·step/total_steps, so a 30-epoch run also moves the
weight from stage 1 to stage 2 as the paper's run does. ``over="epochs"`` reads the curve at the run's own epoch
index, as written: a short run then stops at the curve's start and its stage 2 never carries most of the loss.

Learning rate as the released code: linear warm-up to the base rate over ``warmup`` steps, then
base·(1 - (step - warmup)/total)^0.9 (the denominator keeps the warm-up, so the rate never quite reaches zero).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional

from .errors import TrainingError

STAGE_WEIGHTS = ("paper", "release")
STAGE_WEIGHTS_OVER = ("run", "epochs")
REFERENCE_EPOCHS = 300  # the paper's few-shot run, over which both curves are defined


def stage1_weight(epoch: float, kind: str = "paper") -> float:
    if kind == "paper":
        return 0.8 * math.exp(-0.005 * epoch)
    if kind == "release":
        return 1.0 - 0.6 ** (0.99 ** epoch)
    raise ValueError(f"stage weights must be one of {STAGE_WEIGHTS}, got {kind!r}")


def schedule_epoch(step: int, epoch: int, total_steps: int, over: str = "run") -> float:
    """Where optimiser step ``step`` (0-based, in epoch ``epoch``) reads the stage-weight curve."""
    if over == "run":
        return REFERENCE_EPOCHS * step / max(1, total_steps)
    if over == "epochs":
        return float(epoch)
    raise ValueError(f"stage weights must be spread over one of {STAGE_WEIGHTS_OVER}, got {over!r}")


def default_warmup(total_steps: int) -> int:
    """6% of all steps, the released code's 250 of 4,200 few-shot iterations."""
    return max(1, round(0.06 * total_steps))


def learning_rate(step: int, base_lr: float, warmup: int, total_steps: int) -> float:
    """The rate of optimiser step ``step`` (0-based)."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    return base_lr * max(0.0, 1.0 - (step - warmup) / total_steps) ** 0.9


@dataclass(frozen=True)
class StepPlan:
    """How a run's optimiser steps are laid out; the card's ``training.steps``."""

    per_epoch: int
    total: int
    warmup: int
    global_batch: int  # slices per optimiser step, over all processes and accumulated micro-batches
    processes: int

    def to_card(self) -> Dict[str, int]:
        return {"per_epoch": self.per_epoch, "total": self.total, "warmup": self.warmup,
                "global_batch": self.global_batch, "processes": self.processes}


def plan_steps(*, training_slices: int, batch_size: int, accumulate: int, processes: int, epochs: int,
               warmup_steps: Optional[int]) -> StepPlan:
    """Whole batches only: each epoch leaves out the ``training_slices % global_batch`` slices its order puts last."""
    global_batch = batch_size * accumulate * processes
    if training_slices < global_batch:
        raise TrainingError(f"{training_slices} training slices are fewer than one batch ({batch_size} x "
                            f"{accumulate} accumulated x {processes} processes); lower --batch-size or raise "
                            "--slice-fraction")
    per_epoch = training_slices // global_batch
    total = per_epoch * epochs
    warmup = warmup_steps if warmup_steps is not None else default_warmup(total)
    return StepPlan(per_epoch, total, warmup, global_batch, processes)
