"""The output folder of a run (``--out``, a model directory once the first epoch is saved): the checks made before
any case is read, the training part of its model card, and the summary of the run.

The checks come first because a run must not compute for minutes and then fail to write, and ``--resume`` of a run
that already ended must not redo its set-up (reading and encoding every case)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..models.card import CARD_FILE, write_json_atomic
from ..models.model_dir import make_card
from .checkpoint import BEFORE_ADDED, RunState, TrainingCheckpoint
from .errors import TrainingError
from .options import declared
from .prepare import PreparedData
from .schedule import StepPlan
from .settings import TrainSettings

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


def class_statistics(data: PreparedData, noise_variance: Optional[List[float]]) -> Dict[str, Any]:
    names = data.label_map.names
    stats: Dict[str, Any] = {
        "source": "training slices (before augmentation)",
        "pixel_counts": {name: int(n) for name, n in zip(names, data.class_counts)},
        "frequency": {name: round(float(n) / max(1, int(data.class_counts.sum())), 6)
                      for name, n in zip(names, data.class_counts)},
    }
    if noise_variance is not None:
        stats["cmattn_noise_variance"] = dict(zip(names, noise_variance))
    return stats


def training_card(model, settings: TrainSettings, data: PreparedData, backbone_weights: Dict[str, Any],
                  noise_variance: Optional[List[float]], progress: RunState, status: str,
                  steps: StepPlan) -> Dict[str, Any]:
    best = progress.best or {}
    model_id = settings.model_id or _default_id(settings.out)
    metrics: Dict[str, Any] = {}
    if best.get("val_dice") is not None:
        metrics = {"val_dice": best["val_dice"], "val_dice_mean": best["val_dice_mean"], "epoch": best["epoch"],
                   "protocol": f"Dice per organ on {settings.val_slices} evenly spaced slices of each of "
                               f"{len(data.val_cases)} held-out cases, at the model's input resolution"}
    base = data.base
    training = {
        "status": status,
        "base_model": base.card["id"] if base.card else base.name,
        "cases": {"train": [c.name for c in data.train_cases], "val": [c.name for c in data.val_cases]},
        "training_slices": len(data.train_slices),
        "label_map": data.label_map.source,
        "epochs_done": len(progress.history),
        "steps": steps.to_card(),
        "recipe": settings.result_settings(),
        "wall_s": round(progress.wall_s, 1),
        "history": progress.history,
    }
    return make_card(model, model_id, backbone_weights, data.label_map.classes,
                     title=f"H-SAM fine-tuned on {len(data.train_cases)} cases",
                     description=f"Fine-tuned from {training['base_model']} with hsam train.",
                     normalization=base.normalization(settings.modality), canonical_orientation=base.orientation,
                     slice_field=base.slice_field, metrics=metrics, training=training,
                     class_statistics=class_statistics(data, noise_variance), **inference_options(settings, base.card))


def inference_options(settings: TrainSettings, base_card: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The card's "inference" entry, with the options hsam segment should use by default; none when all are off.
    An option not given keeps the base model's value: a model fine-tuned from the CT model is used as that model is
    (the CT model adapted to MR gained 1.0 point with them), and 0 turns one off. The card's keys are the settings
    of the option table's "inference" group (those ``slice_predictor.card_option`` reads)."""
    names = [f.name for f, option in declared() if option.group == "inference"]
    inherited = (base_card or {}).get("inference") or {}
    chosen = {}
    for name in names:
        value = getattr(settings, name)
        value = inherited.get(name, 0.0) if value is None else value
        if value:
            chosen[name] = value
    return {"inference": chosen} if chosen else {}


def _default_id(out: str) -> str:
    return Path(out).resolve().name
