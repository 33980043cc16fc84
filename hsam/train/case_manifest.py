"""Training cases: image + label pairs from a manifest (JSON or CSV) or given directly, and the split by case.

Manifest forms (relative paths are resolved against the manifest's folder):

- JSON: ``{"cases": [{"image": "a_ct.nii.gz", "label": "a.seg.nrrd", "split": "val"}, ...],
  "label_map": "map.json"}`` (``label_map`` optional, a path or the mapping itself), or just the list of cases.
- CSV with a header row: ``image,label[,split]``.

``split`` is "train" or "val"; validation is always by case, never by slice, so no slice of a validation case
is ever seen in training.
"""
from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .errors import TrainingError

SPLITS = ("train", "val")


@dataclass(frozen=True)
class Case:
    image: str
    label: str
    split: Optional[str] = None  # None: assigned by ``split_cases``
    title: Optional[str] = None  # set by ``with_unique_names``

    @property
    def name(self) -> str:
        """A short name for messages: the image file name without its extensions (or the DICOM folder's name)."""
        return self.title or _stem(Path(self.image))


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".seg.nrrd", ".nii", ".nrrd", ".mha", ".mhd"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def with_unique_names(cases: Sequence[Case]) -> List[Case]:
    """Cases named by their image file, or by folder/file where files share a name (e.g. ``<case>/image.nrrd``)."""
    stems = [_stem(Path(c.image)) for c in cases]
    if len(set(stems)) == len(stems):
        return list(cases)
    return [replace(c, title=f"{Path(c.image).parent.name}/{stem}") for c, stem in zip(cases, stems)]


@dataclass
class Manifest:
    cases: List[Case]
    label_map: Union[None, str, Dict[str, Any]] = None


def read_manifest(path: Union[str, Path]) -> Manifest:
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"{path}: manifest not found")
    if path.suffix.lower() == ".csv":
        rows, label_map = _read_csv(path), None
    elif path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TrainingError(f"{path}: not valid JSON ({exc})") from None
        rows = data.get("cases") if isinstance(data, dict) else data
        label_map = data.get("label_map") if isinstance(data, dict) else None
        if isinstance(label_map, str):
            label_map = str(path.parent / label_map)
    else:
        raise TrainingError(f"{path}: a manifest is a .json or .csv file")
    if not isinstance(rows, list) or not rows:
        raise TrainingError(f"{path}: lists no cases (expected a list of {{image, label, split}} entries)")
    return Manifest([_case_from_row(row, i, path) for i, row in enumerate(rows, 1)], label_map)


def _read_csv(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = [name.strip().lower() for name in reader.fieldnames or []]
        if "image" not in fields or "label" not in fields:
            raise TrainingError(f"{path}: the CSV header must name the columns image,label[,split]; got {fields}")
        return [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def _case_from_row(row: Any, index: int, manifest: Path) -> Case:
    if not isinstance(row, dict) or not row.get("image") or not row.get("label"):
        raise TrainingError(f"{manifest}: case {index} needs an 'image' and a 'label'")
    split = (row.get("split") or "").strip().lower() or None
    if split is not None and split not in SPLITS:
        raise TrainingError(f"{manifest}: case {index} has split {split!r}; use 'train' or 'val'")
    return Case(_resolve(row["image"], manifest.parent), _resolve(row["label"], manifest.parent), split)


def _resolve(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else base / p)


def split_cases(cases: Sequence[Case], val_cases: Optional[int], seed: int,
                no_validation: bool = False) -> Tuple[List[Case], List[Case]]:
    """(train, val). Cases keep a split given in the manifest; otherwise ``val_cases`` of them (default 20%, at
    least one) are drawn at random with ``seed``."""
    if len(cases) != len({(c.image, c.label) for c in cases}):
        raise TrainingError("the same image/label pair is listed twice")
    if no_validation:
        return [replace(c, split="train") for c in cases], []
    if any(c.split for c in cases):
        train = [replace(c, split="train") for c in cases if c.split != "val"]
        val = [c for c in cases if c.split == "val"]
    else:
        if len(cases) < 2:
            raise TrainingError(f"only one case ({cases[0].name}): validation needs a case of its own, since slices "
                                "of one case are never split between training and validation; add a case, or "
                                "train without validation (--no-validation keeps the last epoch)")
        n_val = max(1, round(0.2 * len(cases))) if val_cases is None else val_cases
        if not 1 <= n_val < len(cases):
            raise TrainingError(f"--val-cases {n_val} leaves no case for training or none for validation "
                                f"({len(cases)} cases)")
        order = list(range(len(cases)))
        random.Random(seed).shuffle(order)
        val_index = set(order[:n_val])
        train = [replace(c, split="train") for i, c in enumerate(cases) if i not in val_index]
        val = [replace(c, split="val") for i, c in enumerate(cases) if i in val_index]
    if not train:
        raise TrainingError("every case is marked 'val': at least one training case is needed")
    if not val:
        raise TrainingError("no validation case: mark at least one case 'val' in the manifest, or train without "
                            "validation (--no-validation keeps the last epoch)")
    return train, val
