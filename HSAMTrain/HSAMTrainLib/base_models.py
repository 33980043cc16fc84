"""What fine-tuning can start from: a segmentation model of the registry (its classes and weights are kept), or
base weights of the registry, for a new model whose classes are the mapped segments."""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from HSAMSharedLib.models import ModelInfo

DOWNLOADED_WEIGHTS = "downloaded"  # SAM checkpoints: a file the engine needs named with --checkpoint


@dataclass
class BaseModel:
    id: str  # as the registry (or the user) names it
    title: str
    engineBase: str  # hsam train --base
    isModel: bool  # False: base weights, for a new model
    backbone: str
    classes: List[Dict[str, Any]] = field(default_factory=list)
    checkpoint: Optional[str] = None  # hsam train --checkpoint

    def engineOptions(self) -> List[str]:
        return ["--checkpoint", self.checkpoint] if self.checkpoint else []


def fromModelInfo(model: ModelInfo) -> Optional[BaseModel]:
    """A base for fine-tuning, or None (not on this computer, or not usable as a base)."""
    if model.kind == "model" and model.ready and model.card():
        card = model.card()
        return BaseModel(model.id, model.title, model.id, True, card["config"]["backbone"], list(card["labels"]))
    if model.kind == "base-weights" and (model.ready or model.state == DOWNLOADED_WEIGHTS):
        backbone = model.id.replace("-", "_")  # the catalog names base weights after their backbone
        checkpoint = str(model.path) if model.state == DOWNLOADED_WEIGHTS else None
        return BaseModel(model.id, f"new model on {model.title}", backbone, False, backbone, [], checkpoint)
    return None


def fromFolder(folder: Path) -> BaseModel:
    """A model directory that is not in the registry (scripts, tests)."""
    card = json.loads((Path(folder) / "model.json").read_text(encoding="utf-8"))
    return BaseModel(str(folder), card.get("title", card["id"]), str(folder), True, card["config"]["backbone"],
                     list(card["labels"]))


def baseModels(models: Iterable[ModelInfo]) -> List[BaseModel]:
    """Models first (fine-tuning them keeps their classes), then base weights for a new model."""
    bases = [b for b in map(fromModelInfo, models) if b is not None]
    return sorted(bases, key=lambda b: not b.isModel)


def findBaseModel(bases: Iterable[BaseModel], reference: str) -> BaseModel:
    """By registry id, else a model folder."""
    for base in bases:
        if base.id == reference:
            return base
    if (Path(reference) / "model.json").is_file():
        return fromFolder(Path(reference))
    raise ValueError(f"Base model {reference!r} is neither an installed model, base weights on this computer, nor "
                     "a model folder (see `hsam models list`).")
