"""Label maps: which label value (or ``.seg.nrrd`` segment name) of a case file is which class of the model
(``hsam train --label-map``, a manifest's "label_map", ``hsam evaluate --label-map``). The classes and the rules
for naming them are in ``labels.py``.

A label map is JSON::

    {"classes": "btcv8",                       # optional; a new model's classes: "btcv8" or a list of
                                               #   {"value", "name", "color"[, "terminology"]}; default: the base
                                               #   model's classes
     "map": {"1": "aorta", "7": "spleen",      # file label value -> class name (case-insensitive) or value
             "Liver": "liver",                 # segment name (.seg.nrrd) -> class
             "9": "background"}}               # values to ignore are mapped to "background" (or 0)

Without a map, label values are taken as class values; with one, 0 is still background unless mapped. Segment
names not in the map are matched to class names.
Every value or segment that occurs in a case must be mapped: an unmapped one is an error reported before training
starts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from .labels import BACKGROUND, BTCV_8_ORGANS, LABEL_SETS, class_color, name_key, terminology_problem

BACKGROUND_TARGETS = (BACKGROUND, "0")  # what a label value or segment is mapped to to leave it out


class LabelMapError(ValueError):
    """A label map that cannot be read or does not fit the model's classes; the message says what to change."""


@dataclass
class LabelMap:
    classes: List[Dict[str, Any]]  # foreground classes, values 1..C-1, as in a model card
    by_value: Optional[Dict[int, int]] = None  # None: identity
    by_segment: Dict[str, int] = field(default_factory=dict)  # segment name (its ``name_key``) -> class value
    source: str = "identity"

    @property
    def num_classes(self) -> int:
        return len(self.classes) + 1

    @property
    def names(self) -> List[str]:
        return [BACKGROUND] + [c["name"] for c in self.classes]

    def class_of_value(self, value: int) -> Optional[int]:
        if self.by_value is None:
            return value if 0 <= value < self.num_classes else None
        return self.by_value.get(value)

    def class_of_segment(self, name: str) -> Optional[int]:
        key = name_key(name)
        if key in self.by_segment:
            return self.by_segment[key]
        return _class_value(key, self.classes, strict=False)


def load_label_map(spec: Union[None, str, Path, Dict[str, Any]], base_classes: Optional[List[Dict[str, Any]]]
                   ) -> LabelMap:
    """``spec``: a JSON file, an already parsed mapping, or None (identity). ``base_classes``: the classes of a
    base model (fixed), or None for a new model (then the map's "classes", default the 8 BTCV organs)."""
    source = "identity"
    if isinstance(spec, (str, Path)):
        source = str(spec)
        try:
            spec = json.loads(Path(spec).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LabelMapError(f"{source}: label map not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LabelMapError(f"{source}: label map is not valid JSON ({exc})") from None
    elif spec is not None:
        source = "manifest label_map"
    spec = spec or {}
    if not isinstance(spec, dict):
        raise LabelMapError(f"{source}: a label map is a JSON object with 'map' (and optionally 'classes')")
    classes = _classes(spec.get("classes"), base_classes, source)
    mapping = spec.get("map")
    if mapping is None:
        return LabelMap(classes, None, {}, source)
    if not isinstance(mapping, dict) or not mapping:
        raise LabelMapError(f"{source}: 'map' must be an object from label values or segment names to classes")
    by_value: Dict[int, int] = {0: 0}  # 0 is background in every label file, unless the map says otherwise
    by_segment: Dict[str, int] = {}
    for key, target in mapping.items():
        value = _class_value(str(target), classes, strict=True, source=source)
        if str(key).strip().lstrip("-").isdigit():
            by_value[int(key)] = value
        else:
            by_segment[name_key(str(key))] = value
    return LabelMap(classes, by_value, by_segment, source)


def _classes(spec: Any, base_classes: Optional[List[Dict[str, Any]]], source: str) -> List[Dict[str, Any]]:
    if spec is None:
        return list(base_classes or BTCV_8_ORGANS)
    if isinstance(spec, str):
        if spec.lower() not in LABEL_SETS:
            raise LabelMapError(f"{source}: unknown label set {spec!r}; use one of {', '.join(LABEL_SETS)} or a list")
        classes = list(LABEL_SETS[spec.lower()])
    elif isinstance(spec, list):
        classes = [_check_class(c, i, source) for i, c in enumerate(spec, 1)]
    else:
        raise LabelMapError(f"{source}: 'classes' must be a label set name or a list of {{value, name, color}}")
    if base_classes is not None and [name_key(c["name"]) for c in classes] != \
            [name_key(c["name"]) for c in base_classes]:
        raise LabelMapError(f"{source}: its classes ({', '.join(c['name'] for c in classes)}) differ from the base "
                            f"model's ({', '.join(c['name'] for c in base_classes)}); map onto the base model's "
                            "classes, or start a new model from a backbone (--base litemedsam)")
    return classes


def _check_class(entry: Any, index: int, source: str) -> Dict[str, Any]:
    if not isinstance(entry, dict) or not entry.get("name"):
        raise LabelMapError(f"{source}: class {index} needs at least a 'name'")
    if int(entry.get("value", index)) != index:
        raise LabelMapError(f"{source}: class values must run 1, 2, 3, ... in order; {entry['name']!r} has "
                            f"{entry.get('value')}")
    problem = terminology_problem(entry["terminology"]) if entry.get("terminology") is not None else None
    if problem:  # found now, not in the segmentation written after training
        raise LabelMapError(f"{source}: class {entry['name']!r}: terminology {problem}; or leave the terminology out")
    color = entry.get("color") or class_color(index)
    entry = {key: value for key, value in entry.items() if not (key == "terminology" and value is None)}
    return dict(entry, value=index, color=[int(c) for c in color])


def _class_value(target: str, classes: List[Dict[str, Any]], strict: bool, source: str = "") -> Optional[int]:
    key = name_key(target)
    if key in BACKGROUND_TARGETS:
        return 0
    for c in classes:
        if key == name_key(c["name"]) or key == str(c["value"]):
            return int(c["value"])
    if strict:
        raise LabelMapError(f"{source}: maps to {target!r}, which is not a class of the model (classes: "
                            f"{', '.join(c['name'] for c in classes)}, or 'background')")
    return None
