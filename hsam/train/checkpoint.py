"""Training state on disk: written after every epoch and on a stop request, read by ``--resume``.

One file, ``<out>/training/state.pt``, holds the trainable weights, the optimiser (and AMP scaler) state, where
the run is (epoch, step in the epoch), the history and the best validation result, and the settings that
determine the result. It is written to a temporary file and renamed, so a crash or a kill while saving leaves the
previous state intact. It is read with ``torch.load(weights_only=True)``: plain tensors and numbers only, never
code. ``TrainingCheckpoint`` and ``RunState`` are its typed view; their ``to_dict`` writes exactly the keys that
states have always had, so states written by earlier versions resume and earlier versions can read new ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ..atomic import write_atomic
from ..weights import torch_load_plain
from .errors import TrainingError

STATE_FORMAT = "hsam-train-state/1"
STATE_DIR = "training"
STATE_FILE = "state.pt"
_REQUIRED = ("format", "model", "optimizer", "progress", "settings")
# Settings added after states were already being written, with what a state that lacks them was trained with.
BEFORE_ADDED = {"ema": 0.0, "stage_weights_over": "epochs", "organ_jitter": 0.0, "modality": None, "lora_blocks": 0,
                "organ_levels": 0.0, "coarse_views": 0.0, "organ_gain": 0.0}


@dataclass
class RunState:
    """Where a run is and what it has reached: the ``progress`` entry of the state file."""

    epoch: int = 0  # epochs done
    step_in_epoch: int = 0  # optimiser steps done in the current epoch
    loss_sum: float = 0.0  # the current epoch's step losses so far, for its mean loss
    loss_count: int = 0
    history: List[Dict[str, Any]] = field(default_factory=list)  # one record per epoch done, as in the card
    best: Optional[Dict[str, Any]] = None  # the epoch saved as the model: epoch, val_dice, val_dice_mean
    bad_epochs: int = 0  # epochs since the best one, for --early-stop
    wall_s: float = 0.0  # seconds spent training and validating, over all sessions of the run
    finished: bool = False  # ended early (--early-stop); a run that ran all its epochs is told by ``epoch``
    # Seconds the last validation took (the ETA counts it once per epoch left); None before the first, when the
    # state file has no "val_s".
    validation_s: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        progress = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "loss_sum": self.loss_sum,
                    "loss_count": self.loss_count, "history": self.history, "best": self.best,
                    "bad_epochs": self.bad_epochs, "wall_s": self.wall_s, "finished": self.finished}
        if self.validation_s is not None:
            progress["val_s"] = self.validation_s
        return progress

    @classmethod
    def from_dict(cls, progress: Dict[str, Any]) -> RunState:
        return cls(epoch=progress["epoch"], step_in_epoch=progress["step_in_epoch"],
                   loss_sum=progress["loss_sum"], loss_count=progress["loss_count"],
                   history=list(progress["history"]), best=progress["best"], bad_epochs=progress["bad_epochs"],
                   wall_s=progress["wall_s"], finished=progress["finished"], validation_s=progress.get("val_s"))

    def start_next_epoch(self) -> None:
        self.epoch += 1
        self.step_in_epoch, self.loss_sum, self.loss_count = 0, 0.0, 0


@dataclass
class TrainingCheckpoint:
    """Everything ``--resume`` needs: the content of the state file."""

    model: Dict[str, torch.Tensor]  # the trainable weights (``trainable_state``: no frozen base backbone)
    optimizer: Dict[str, Any]  # AdamW's state_dict
    scaler: Optional[Dict[str, Any]]  # the AMP GradScaler's state_dict, when fp16 uses one
    average: Optional[Dict[str, torch.Tensor]]  # the --ema weights, when averaging
    progress: RunState
    settings: Dict[str, Any]  # what determines the result: the settings and the data (``Trainer`` fingerprint)

    def to_dict(self) -> Dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer, "scaler": self.scaler, "average": self.average,
                "progress": self.progress.to_dict(), "settings": self.settings, "format": STATE_FORMAT}

    @classmethod
    def from_dict(cls, state: Dict[str, Any]) -> TrainingCheckpoint:
        # "scaler" and "average" are absent from states written before AMP and --ema existed.
        return cls(model=state["model"], optimizer=state["optimizer"], scaler=state.get("scaler"),
                   average=state.get("average"), progress=RunState.from_dict(state["progress"]),
                   settings=state["settings"])


def state_path(out_dir: Path) -> Path:
    return Path(out_dir) / STATE_DIR / STATE_FILE


def save_state(path: Path, checkpoint: TrainingCheckpoint) -> Path:
    state = checkpoint.to_dict()
    return write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> TrainingCheckpoint:
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"nothing to resume: {path} does not exist (start without --resume)")
    state = torch_load_plain(
        path, error=TrainingError,
        unreadable=f"{path}: the training checkpoint is damaged and cannot be resumed ({{reason}}); delete it to start "
                   "over, or restore a copy",
        refused=f"{path}: refused to load the training checkpoint ({{reason}}); it is not a file written by hsam train")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or \
            any(key not in state for key in _REQUIRED):
        raise TrainingError(f"{path}: not an hsam training checkpoint (format {STATE_FORMAT} expected)")
    return TrainingCheckpoint.from_dict(state)


def check_same_settings(saved: Dict[str, Any], current: Dict[str, Any], path: Path) -> None:
    """A resumed run must be the run that was interrupted: the same data, model and recipe."""
    saved = {**BEFORE_ADDED, **saved}
    differences = [f"{key}: {saved.get(key)!r} then, {current.get(key)!r} now"
                   for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
    if differences:
        raise TrainingError(f"{path}: was written with other settings, so resuming would not continue the same "
                            f"run ({'; '.join(differences[:5])}); use the original settings or a new --out")
