"""Organ label sets: value, name, color and SNOMED CT terminology (as Slicer's segment terminology expects)."""
from __future__ import annotations

from typing import Dict, List

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


def generic_labels(num_classes: int) -> List[Dict]:
    """Placeholder names for models whose classes are not known (e.g. converted from a foreign checkpoint)."""
    return [{"value": i, "name": f"class {i}", "color": [(53 * i) % 256, (97 * i) % 256, (151 * i) % 256]}
            for i in range(1, num_classes)]
