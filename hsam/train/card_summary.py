"""What a fine-tuned model's card says about its training: metrics, class statistics and a summary of the run."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from ..models.model_dir import make_card
from .checkpoint import RunState
from .prepare import PreparedData
from .schedule import StepPlan
from .settings import TrainSettings


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
                     metrics=metrics, training=training,
                     class_statistics=class_statistics(data, noise_variance))


def _default_id(out: str) -> str:
    return Path(out).resolve().name
