"""Training state on disk: written after every epoch and on a stop request, read by ``--resume``.

One file, ``<out>/training/state.pt``, holds the trainable weights, the optimiser (and AMP scaler) state, where
the run is (epoch, step in the epoch, optimiser step), the history and the best validation result, and the
settings that determine the result. It is written to a temporary file and renamed, so a crash or a kill while
saving leaves the previous state intact. It is read with ``torch.load(weights_only=True)``: plain tensors and
numbers only, never code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import torch

from ..atomic import write_atomic
from ..model.weights import RefusedFile, UnreadableFile, torch_load_plain
from .errors import TrainingError

STATE_FORMAT = "hsam-train-state/1"
STATE_DIR = "training"
STATE_FILE = "state.pt"
_REQUIRED = ("format", "model", "optimizer", "progress", "settings")
# Settings added after states were already being written, with what a state that lacks them was trained with.
BEFORE_ADDED = {"ema": 0.0, "stage_weights_over": "epochs", "organ_jitter": 0.0, "modality": None}


def state_path(out_dir: Path) -> Path:
    return Path(out_dir) / STATE_DIR / STATE_FILE


def save_state(path: Path, state: Dict[str, Any]) -> Path:
    return write_atomic(path, lambda tmp: torch.save(dict(state, format=STATE_FORMAT), tmp))


def load_state(path: Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"nothing to resume: {path} does not exist (start without --resume)")
    try:
        state = torch_load_plain(path)
    except UnreadableFile as exc:
        raise TrainingError(f"{path}: the training checkpoint is damaged and cannot be resumed ({exc}); "
                            "delete it to start over, or restore a copy") from None
    except RefusedFile as exc:
        raise TrainingError(f"{path}: refused to load the training checkpoint ({exc}); it is not "
                            "a file written by hsam train") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or \
            any(key not in state for key in _REQUIRED):
        raise TrainingError(f"{path}: not an hsam training checkpoint (format {STATE_FORMAT} expected)")
    return state


def check_same_settings(saved: Dict[str, Any], current: Dict[str, Any], path: Path) -> None:
    """A resumed run must be the run that was interrupted: the same data, model and recipe."""
    saved = {**BEFORE_ADDED, **saved}
    differences = [f"{key}: {saved.get(key)!r} then, {current.get(key)!r} now"
                   for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
    if differences:
        raise TrainingError(f"{path}: was written with other settings, so resuming would not continue the same "
                            f"run ({'; '.join(differences[:5])}); use the original settings or a new --out")
