"""The classes of a model, as its card lists them under "labels": value (1, 2, ...; 0 is background), name, color
and SNOMED CT terminology (as Slicer's segment terminology expects). The organ label sets, a color for a class that
has none, and the rules that say which class a name or a terminology is; label maps (which label value or segment
of a case file is which class) build on them in ``label_map.py``.

Imports nothing of the engine: the Slicer modules run this file on its own (``HSAMSharedLib.engine.loadEngineFile``)
so that HSAM Segment colors a class and HSAM Train matches a segment to a class by these same rules."""
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
LABEL_SETS = {"btcv8": BTCV_8_ORGANS}  # the label sets a label map can name as its "classes"


BACKGROUND = "background"  # the name of class 0: where a label map sends what a model is not to learn


def name_key(name: str) -> str:
    """A class or segment name as names are compared: case and surrounding spaces do not count ("Liver " is
    "liver")."""
    return name.strip().lower()


def class_named(name: str, classes: List[Dict]) -> Optional[Dict]:
    """The class of ``classes`` called ``name`` (compared as ``name_key`` says), or None."""
    key = name_key(name)
    return next((c for c in classes if name_key(c["name"]) == key), None)


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


def same_structure(a: Optional[Dict], b: Optional[Dict]) -> bool:
    """Two terminologies name the same structure: the same type and type modifier codes (so "left kidney" is not
    "right kidney"); a missing terminology names nothing."""
    if not a or not b:
        return False

    def key(terminology: Dict) -> tuple:
        return tuple((terminology.get(field) or {}).get("CodeValue") for field in ("type", "typeModifier"))

    return key(a) == key(b)
