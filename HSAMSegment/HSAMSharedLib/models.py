"""The segmentation models the engine's registry offers (``hsam models list``), as the module shows them."""
import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

# Registry states (hsam/models/registry.py) in which a model can run without downloading anything.
READY_STATES = ("installed", "bundled", "in package")
DOWNLOADED_STATES = ("installed", "downloaded")
DOWNLOADABLE_STATE = "not downloaded"


class ModelInfo:
    def __init__(self, row: Dict[str, Any]):
        self.id = row["id"]
        self.kind = row.get("kind") or "model"
        self.source = row.get("source") or ""
        self.version = row.get("version") or ""
        self.title = row.get("title") or self.id
        self.state = row.get("state") or ""
        self.size = row.get("size")
        self.path = Path(row["path"]) if row.get("path") else None

    @property
    def ready(self) -> bool:
        return self.state in READY_STATES

    @property
    def downloaded(self) -> bool:
        """Fetched from the catalog into the models folder (so "Clear" may delete it)."""
        return self.source == "catalog" and self.state in DOWNLOADED_STATES

    @property
    def needsDownload(self) -> bool:
        return self.state == DOWNLOADABLE_STATE

    def card(self) -> Dict[str, Any]:
        """The model card; empty until the model is on disk (and for base weights)."""
        card = self.path / "model.json" if self.path else None
        if card is None or not card.is_file():
            return {}
        try:
            return dict(json.loads(card.read_text(encoding="utf-8")))
        except (ValueError, OSError):
            return {}

    def organs(self) -> List[Dict[str, Any]]:
        """The model card's labels (value, name, color, terminology); a label without a color gets the one the
        engine gives its segment."""
        return [dict(label, color=label.get("color") or classColor(label["value"]))
                for label in self.card().get("labels", [])]

    def description(self) -> str:
        size = f", {humanSize(self.size)}" if self.size else ""
        return f"{self.title} ({self.state}{size})"


def classColor(value: int) -> List[int]:
    """The engine's color for a class whose card gives none, by the engine's own rule."""
    from .engine import loadEngineFile

    return loadEngineFile("models/labels.py").class_color(value)


def modelsFromEvents(events: Iterable[Dict[str, Any]]) -> List[ModelInfo]:
    """Every registry entry (models and base weights) from the ``result`` event of ``hsam models list``."""
    for event in events:
        if event.get("event") == "result" and "models" in event:
            return [ModelInfo(row) for row in event["models"]]
    return []


def segmentationModels(models: Iterable[ModelInfo]) -> List[ModelInfo]:
    """What the model selector offers: models, not the base weights they are built on."""
    return [m for m in models if m.kind == "model"]


def findModel(models: Iterable[ModelInfo], modelId: Optional[str]) -> Optional[ModelInfo]:
    return next((m for m in models if m.id == modelId), None)


def humanSize(size: Optional[float]) -> str:
    if size is None:
        return "unknown size"
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000.0
    return f"{size:.1f} GB"
