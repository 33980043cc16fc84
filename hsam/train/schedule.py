"""Schedules: the stage weight λw and the learning rate.

λw weighs stage 1 (L = λw·L1 + (1 - λw)·L2):

- "paper": starts at 0.8 and decays exponentially with coefficient 0.005 per epoch, λw = 0.8·exp(-0.005·epoch)
  (0.8 at epoch 0, 0.48 at 100, 0.18 at 300);
- "release": the released code's w2 = 0.6^(0.99^epoch), i.e. λw = 1 - 0.6^(0.99^epoch) (0.40 at epoch 0, 0.17 at
  100, 0.025 at 299); method notes §10.1.

Learning rate as the released code: linear warm-up to the base rate over ``warmup`` steps, then
base·(1 - (step - warmup)/total)^0.9 (the denominator keeps the warm-up, so the rate never quite reaches zero).
"""
from __future__ import annotations

import math

STAGE_WEIGHTS = ("paper", "release")


def stage1_weight(epoch: int, kind: str = "paper") -> float:
    if kind == "paper":
        return 0.8 * math.exp(-0.005 * epoch)
    if kind == "release":
        return 1.0 - 0.6 ** (0.99 ** epoch)
    raise ValueError(f"stage weights must be one of {STAGE_WEIGHTS}, got {kind!r}")


def default_warmup(total_steps: int) -> int:
    """6% of all steps, the released code's 250 of 4,200 few-shot iterations."""
    return max(1, round(0.06 * total_steps))


def learning_rate(step: int, base_lr: float, warmup: int, total_steps: int) -> float:
    """The rate of optimiser step ``step`` (0-based)."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    return base_lr * max(0.0, 1.0 - (step - warmup) / total_steps) ** 0.9
