"""Segment terminology as Slicer stores it (a tag string) and as model cards store it (coded concepts), whether two
of them name the same structure, and the standard terminology of a structure known only by its name."""
from typing import Any, Dict, Optional

# Slicer gives segments without a chosen terminology the generic "Tissue" type: it identifies nothing.
GENERIC_TYPE_CODE = "85756007"
# Searched first by name: the list Slicer's segment editor offers (the DICOM master list has the rest, e.g. the
# heart's chambers).
GENERAL_ANATOMY = "Segmentation category and type - 3D Slicer General Anatomy list"
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


def slicerTerminologies():
    """Slicer's terminologies logic, with the lists the application loaded; None outside the application."""
    import slicer

    modules = getattr(slicer, "modules", None)
    return modules.terminologies.logic() if modules is not None and hasattr(modules, "terminologies") else None


def terminologyByName(name: str, terminologies=None) -> Optional[Dict[str, Any]]:
    """The standard terminology of the structure called ``name`` ("Left atrium", "liver"), from the terminology
    lists loaded in ``terminologies`` (Slicer's terminologies logic; by default the application's), the General
    Anatomy list first. Slicer labels every type and type modifier with a lower-case name ("left atrium", "left
    kidney"), which is what is matched. None when no list has that name, or outside the Slicer application."""
    import slicer
    import vtk

    terminologies = terminologies if terminologies is not None else slicerTerminologies()
    label = (name or "").strip().lower()
    if terminologies is None or not label:
        return None
    loaded = vtk.vtkStringArray()
    terminologies.GetLoadedTerminologyNames(loaded)
    contexts = sorted((loaded.GetValue(i) for i in range(loaded.GetNumberOfValues())),
                      key=lambda context: context != GENERAL_ANATOMY)
    for context in contexts:
        entry = slicer.vtkSlicerTerminologyEntry()
        if terminologies.FindTypeInTerminologyBy3dSlicerLabel(context, label, entry):
            return parseTerminologyEntry(terminologies.SerializeTerminologyEntry(entry))
    return None
