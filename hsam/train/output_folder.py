"""Checks on ``--out`` made before any case is read: a run must not compute for minutes and then fail to write,
and ``--resume`` of a run that already ended must not redo its set-up (reading and encoding every case)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

from ..models.card import CARD_FILE, write_json_atomic
from .checkpoint import BEFORE_ADDED, RunState, TrainingCheckpoint
from .errors import TrainingError

FINISHED = ("complete", "early-stopped")


def check_writable_folder(out: Path) -> None:
    """``out`` is (or can be made) a folder this process can write into."""
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} is a file; the model is a folder: choose a folder name (new or empty)")
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise TrainingError(f"--out {out}: {existing} is a file, so no folder can be made inside it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise TrainingError(f"--out {out}: cannot write in {existing} (no permission, or a read-only disk); "
                            "choose a folder you can write to")


def finished_status(saved: TrainingCheckpoint) -> Optional[str]:
    """How the saved run ended ('complete', 'early-stopped'), or None while it still has epochs to go."""
    progress, epochs = saved.progress, saved.settings.get("epochs")
    if progress.finished and progress.epoch < (epochs or 0):
        return "early-stopped"
    if epochs is not None and progress.epoch >= epochs:
        return "complete"
    return None


def same_recipe(saved_settings: Dict[str, Any], current: Dict[str, Any]) -> bool:
    """The settings the user gives now are the ones the saved run used (those a run can compare without its data)."""
    saved = {**BEFORE_ADDED, **saved_settings}
    current = json.loads(json.dumps(current))  # tuples -> lists, as the saved ones went through JSON
    return all(saved.get(key) == value for key, value in current.items())


def finished_summary(out: Path, saved: TrainingCheckpoint, status: str) -> Dict[str, Any]:
    """The summary of a run that already ended; the card says so (a kill between the last save and the card's update
    could leave it 'running')."""
    progress = saved.progress
    card_file = out / CARD_FILE
    if card_file.is_file():
        card = json.loads(card_file.read_text(encoding="utf-8"))
        if (card.get("training") or {}).get("status") != status:
            card.setdefault("training", {})["status"] = status
            write_json_atomic(card_file, card)
    return run_summary(out, progress, status)


def run_summary(out: Path, progress: RunState, status: str) -> Dict[str, Any]:
    """The ``done`` event and the result of ``train``."""
    best = progress.best or {}
    return {"model": str(out), "status": status, "best_epoch": best.get("epoch"), "val_dice": best.get("val_dice"),
            "val_dice_mean": best.get("val_dice_mean"), "epochs_done": len(progress.history),
            "wall_s": round(progress.wall_s, 1)}
