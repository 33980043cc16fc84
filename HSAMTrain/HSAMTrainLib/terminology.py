"""Segment terminology as Slicer stores it (a tag string) and as model cards store it (coded concepts), and
whether two of them name the same structure."""
from typing import Any, Dict, Optional

# Slicer gives segments without a chosen terminology the generic "Tissue" type: it identifies nothing.
GENERIC_TYPE_CODE = "85756007"
_FIELDS = ("category", "type", "typeModifier")


def _code(text: str) -> Optional[Dict[str, str]]:
    parts = (text.split("^") + ["", "", ""])[:3]
    if not parts[1]:
        return None
    return {"CodingSchemeDesignator": parts[0], "CodeValue": parts[1], "CodeMeaning": parts[2]}


def parseTerminologyEntry(entry: str) -> Optional[Dict[str, Any]]:
    """A Slicer terminology entry ("context~category~type~typeModifier~...", codes as
    "scheme^value^meaning") as a model-card terminology; None when it names no specific structure."""
    fields = (entry or "").split("~")
    if len(fields) < 4:
        return None
    terminology = {name: _code(text) for name, text in zip(_FIELDS, fields[1:4])}
    if terminology["type"] is None or terminology["type"]["CodeValue"] == GENERIC_TYPE_CODE:
        return None
    return {name: code for name, code in terminology.items() if code is not None}


def segmentTerminology(segment) -> Optional[Dict[str, Any]]:
    import vtk

    entry = vtk.mutable("")
    segment.GetTag(segment.GetTerminologyEntryTagName(), entry)
    return parseTerminologyEntry(str(entry))


def sameStructure(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]) -> bool:
    """Same type and type modifier codes (so "left kidney" differs from "right kidney")."""
    if not a or not b:
        return False

    def key(term):
        return tuple((term.get(name) or {}).get("CodeValue") for name in ("type", "typeModifier"))

    return key(a) == key(b)
