"""Organ label sets: value, name, color and SNOMED CT terminology (as Slicer's segment terminology expects).

Imports nothing of the engine: the Slicer modules run this file on its own (``HSAMSharedLib.engine.loadEngineFile``)
for the color of a class that has none."""
from __future__ import annotations

from typing import Dict, List, Optional

_ANATOMY = {"CodingSchemeDesignator": "SCT", "CodeValue": "123037004", "CodeMeaning": "Anatomical Structure"}
_RIGHT = {"CodingSchemeDesignator": "SCT", "CodeValue": "24028007", "CodeMeaning": "Right"}
_LEFT = {"CodingSchemeDesignator": "SCT", "CodeValue": "7771000", "CodeMeaning": "Left"}


def _organ(value: int, name: str, color: List[int], code: str, meaning: str, modifier: Dict = None) -> Dict:
    terminology = {"category": _ANATOMY,
                   "type": {"CodingSchemeDesignator": "SCT", "CodeValue": code, "CodeMeaning": meaning}}
    if modifier:
        terminology["typeModifier"] = modifier
    return {"value": value, "name": name, "color": color, "terminology": terminology}


# Class order of the Synapse/BTCV 8-organ benchmark (and of the released H-SAM checkpoint); 0 is background.
BTCV_8_ORGANS: List[Dict] = [
    _organ(1, "spleen", [157, 108, 162], "78961009", "Spleen"),
    _organ(2, "right kidney", [185, 102, 83], "64033007", "Kidney", _RIGHT),
    _organ(3, "left kidney", [212, 126, 151], "64033007", "Kidney", _LEFT),
    _organ(4, "gallbladder", [139, 150, 98], "28231008", "Gallbladder"),
    _organ(5, "liver", [221, 130, 101], "10200004", "Liver"),
    _organ(6, "stomach", [216, 132, 105], "69695003", "Stomach"),
    _organ(7, "aorta", [224, 97, 76], "15825003", "Aorta"),
    _organ(8, "pancreas", [249, 180, 111], "15776009", "Pancreas"),
]


def class_color(value: int) -> List[int]:
    """A color for a class that has none (distinct for neighbouring values)."""
    return [(53 * value) % 256, (97 * value) % 256, (151 * value) % 256]


def generic_labels(num_classes: int) -> List[Dict]:
    """Placeholder names for models whose classes are not known (e.g. converted from a foreign checkpoint)."""
    return [{"value": i, "name": f"class {i}", "color": class_color(i)} for i in range(1, num_classes)]


TERMINOLOGY_FIELDS = ("category", "type", "typeModifier")  # typeModifier is optional
CODE_FIELDS = ("CodingSchemeDesignator", "CodeValue", "CodeMeaning")


def terminology_problem(terminology: object) -> Optional[str]:
    """What keeps ``terminology`` from being a Slicer segment terminology (None when it is one): coded
    "category" and "type" (and optionally "typeModifier"), each with CodingSchemeDesignator, CodeValue and
    CodeMeaning."""
    if not isinstance(terminology, dict):
        return "must be an object with 'category' and 'type'"
    for field in TERMINOLOGY_FIELDS:
        code = terminology.get(field)
        if code is None and field == "typeModifier":
            continue
        if not isinstance(code, dict) or not all(isinstance(code.get(c), str) and code[c] for c in CODE_FIELDS):
            return (f"{field!r} is missing or not a code with {', '.join(CODE_FIELDS)} (e.g. \"category\": "
                    '{"CodingSchemeDesignator": "SCT", "CodeValue": "123037004", "CodeMeaning": "Anatomical '
                    'Structure"})')
    return None
