"""Everything checked and loaded before the first step: base model card, cases, label map, split, slices.

All input problems surface here, before a model is built or a step is run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List

import numpy as np

from ..models.label_map import LabelMap, LabelMapError, load_label_map
from .case_loading import load_cases
from .case_manifest import Case, read_manifest, split_cases, with_unique_names
from .dataset import SliceSet, pick_slices, validation_slices
from .errors import TrainingError
from .model_setup import BaseModel, resolve_base
from .settings import TrainSettings


@dataclass
class PreparedData:
    base: BaseModel
    label_map: LabelMap
    train_cases: List[Case]
    val_cases: List[Case]
    train_slices: SliceSet
    val_slices: List[SliceSet]  # one set per validation case
    class_counts: np.ndarray  # pixels per class in the training slices (before augmentation)

    def fingerprint(self) -> Dict[str, Any]:
        return {"cases": [[c.image, c.label, c.split] for c in self.train_cases + self.val_cases],
                "classes": self.label_map.names}


def gather_cases(settings: TrainSettings):
    """(cases, label-map spec) from the manifest and/or ``--case`` pairs."""
    cases: List[Case] = []
    label_map = settings.label_map
    if settings.manifest:
        manifest = read_manifest(settings.manifest)
        cases.extend(manifest.cases)
        label_map = label_map or manifest.label_map
    cases.extend(Case(image, label) for image, label in settings.cases)
    if not cases:
        raise TrainingError("no training cases: give --cases MANIFEST or --case IMAGE LABEL (repeatable)")
    return with_unique_names(cases), label_map


def prepare_data(settings: TrainSettings, log: Callable[[str], None]) -> PreparedData:
    base = resolve_base(settings.base)
    if settings.box_prompts and base.backbone != "litemedsam":
        raise TrainingError(f"--box-prompts needs a model on the LiteMedSAM backbone (its box-prompted decoder); "
                            f"this one is on {base.backbone}: leave --box-prompts out")
    cases, label_map_spec = gather_cases(settings)
    try:
        label_map = load_label_map(label_map_spec, base.classes)
    except LabelMapError as exc:  # a bad input like any other found before training
        raise TrainingError(str(exc)) from None
    train_cases, val_cases = split_cases(cases, settings.val_cases, settings.seed, settings.no_validation)
    log(f"{len(train_cases)} training cases, {len(val_cases)} validation cases; reading and checking them")
    volumes = load_cases(train_cases + val_cases, label_map, base.normalization(settings.modality), base.orientation,
                         base.slice_field)
    train_volumes, val_volumes = volumes[:len(train_cases)], volumes[len(train_cases):]
    train_slices = pick_slices(train_volumes, settings.slice_fraction, settings.empty_slice_fraction, settings.seed)
    counts = train_slices.class_counts(label_map.num_classes)
    absent = [name for name, n in zip(label_map.names[1:], counts[1:]) if n == 0]
    if len(absent) == len(counts) - 1:
        raise TrainingError("the picked training slices show no organ at all; raise --slice-fraction")
    if absent:
        log(f"warning: no training slice shows {', '.join(absent)}; the model cannot learn "
            f"{'it' if len(absent) == 1 else 'them'} (add cases or raise --slice-fraction)")
    log(f"{len(train_slices)} training slices from {len(train_cases)} cases "
        f"({settings.slice_fraction:.0%} of their slices, foreground first)")
    return PreparedData(base, label_map, train_cases, val_cases, train_slices,
                        validation_slices(val_volumes, settings.val_slices), counts)
