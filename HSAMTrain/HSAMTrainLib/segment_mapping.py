"""Which class of the model each segment of the cases is: the rows of the mapping table, suggestions (standard
terminology first, then the name), and new classes that the fine-tuned model learns in addition to the base
model's. Segments are keyed by name: one row serves every case that has that segment.

The rules are the engine's own (``hsam/models/labels.py``: how names compare, the background, when two
terminologies name the same structure), run without the engine, so that a segment is matched here exactly as
``hsam train`` matches it. What is Slicer's own is here too: a segment's terminology as Slicer stores it (a tag
string), and the standard terminology of a structure known only by its name, from Slicer's terminology lists."""
import copy
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional

from HSAMSharedLib.engine import loadEngineFile

from .case_list import TrainingCase

CLASSES = loadEngineFile("models/labels.py")  # the engine's class vocabulary (no torch or engine package here)
BACKGROUND = CLASSES.BACKGROUND  # target of a segment left out of training (its voxels count as background)
# Slicer gives segments without a chosen terminology the generic "Tissue" type: it identifies nothing.
GENERIC_TYPE_CODE = "85756007"
# Searched first by name: the list Slicer's segment editor offers (the DICOM master list has the rest, e.g. the
# heart's chambers).
GENERAL_ANATOMY = "Segmentation category and type - 3D Slicer General Anatomy list"


def _code(text: str) -> Optional[Dict[str, str]]:
    parts = (text.split("^") + ["", "", ""])[:3]
    if not parts[1]:
        return None
    return dict(zip(CLASSES.CODE_FIELDS, parts))


def parseTerminologyEntry(entry: str) -> Optional[Dict[str, Any]]:
    """A Slicer terminology entry ("context~category~type~typeModifier~...", codes as
    "scheme^value^meaning") as a model-card terminology; None when it names no specific structure."""
    fields = (entry or "").split("~")
    if len(fields) < 4:
        return None
    terminology = {name: _code(text) for name, text in zip(CLASSES.TERMINOLOGY_FIELDS, fields[1:4])}
    if terminology["type"] is None or terminology["type"]["CodeValue"] == GENERIC_TYPE_CODE:
        return None
    return {name: code for name, code in terminology.items() if code is not None}


def segmentTerminology(segment) -> Optional[Dict[str, Any]]:
    import vtk

    entry = vtk.mutable("")
    segment.GetTag(segment.GetTerminologyEntryTagName(), entry)
    return parseTerminologyEntry(str(entry))


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


@dataclass
class SegmentRow:
    name: str
    terminology: Optional[Dict[str, Any]]
    color: List[int]  # 0..255
    cases: List[str] = field(default_factory=list)  # names of the cases that have it


def segmentRows(cases: Iterable[TrainingCase], terminologies=None) -> List[SegmentRow]:
    """Every distinct segment name of the cases, in the order first seen. A segment without a terminology of its
    own gets the standard one of its name, if Slicer's terminology lists (``terminologies``: Slicer's
    terminologies logic, by default the application's) know it: so a new class "left atrium" is coded as the left
    atrium in the model, and in every segmentation the model makes."""
    rows: Dict[str, SegmentRow] = {}
    for case in cases:
        segmentation = case.segmentationNode.GetSegmentation()
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            key = CLASSES.name_key(segment.GetName())
            if key not in rows:
                terminology = segmentTerminology(segment) or terminologyByName(segment.GetName(), terminologies)
                rows[key] = SegmentRow(segment.GetName(), terminology,
                                       [int(round(255 * c)) for c in segment.GetColor()])
            if case.name not in rows[key].cases:
                rows[key].cases.append(case.name)
    return list(rows.values())


class SegmentMapping:
    """Segment name -> class name (or BACKGROUND). ``classes`` are the base model's, followed by new ones; class
    values run 1, 2, ... in that order, so the base model's classes keep their values. ``labelMapSpec`` is the
    label map ``hsam train`` reads."""

    def __init__(self, baseClasses: Iterable[Dict[str, Any]]) -> None:
        self.baseClasses = [copy.deepcopy(c) for c in baseClasses]
        self.newClasses: List[Dict[str, Any]] = []
        self.targets: Dict[str, str] = {}

    @property
    def classes(self) -> List[Dict[str, Any]]:
        return [dict(c, value=value) for value, c in enumerate(self.baseClasses + self.newClasses, 1)]

    def targetOf(self, segmentName: str) -> Optional[str]:
        return self.targets.get(CLASSES.name_key(segmentName))

    def setTarget(self, segmentName: str, target: str) -> None:
        """``target``: a class name, or BACKGROUND to leave the segment out."""
        if target != BACKGROUND and self.classValue(target) is None:
            raise ValueError(f"{target!r} is not a class of the model; add it as a new class first")
        self.targets[CLASSES.name_key(segmentName)] = target

    def addNewClass(self, row: SegmentRow) -> str:
        """A new class named, colored and coded like the segment; the segment is mapped to it."""
        if self.classValue(row.name) is None:
            entry = {"name": row.name, "color": list(row.color)}
            if row.terminology:
                entry["terminology"] = copy.deepcopy(row.terminology)
            self.newClasses.append(entry)
        self.setTarget(row.name, row.name)
        return row.name

    def removeUnusedNewClasses(self) -> None:
        used = {CLASSES.name_key(t) for t in self.targets.values()}
        self.newClasses = [c for c in self.newClasses if CLASSES.name_key(c["name"]) in used]

    def classValue(self, className: str) -> Optional[int]:
        named = CLASSES.class_named(className, self.classes)
        return named["value"] if named else None

    def valueOf(self, segmentName: str) -> Optional[int]:
        """The label value a segment is exported with: its class value, 0 for BACKGROUND, None if unmapped."""
        target = self.targetOf(segmentName)
        if target is None:
            return None
        return 0 if target == BACKGROUND else self.classValue(target)

    def labelMapSpec(self) -> Dict[str, Any]:
        """The ``hsam train`` label map of the exported label files, whose values are already class values."""
        classes = self.classes
        mapping = {"0": BACKGROUND, **{str(c["value"]): c["name"] for c in classes}}
        return {"classes": classes, "map": mapping}

    def toDict(self) -> Dict[str, Any]:
        return {"base_classes": self.baseClasses, "new_classes": self.newClasses, "targets": dict(self.targets)}

    @classmethod
    def fromDict(cls, data: Dict[str, Any]) -> "SegmentMapping":
        mapping = cls(data.get("base_classes", []))
        mapping.newClasses = list(data.get("new_classes", []))
        mapping.targets = dict(data.get("targets", {}))
        return mapping


def suggestTarget(row: SegmentRow, classes: Iterable[Dict[str, Any]]) -> Optional[str]:
    """The class with the same standard terminology, else the class with the same name, else None."""
    classes = list(classes)
    for c in classes:
        if CLASSES.same_structure(row.terminology, c.get("terminology")):
            return c["name"]
    named = CLASSES.class_named(row.name, classes)
    return named["name"] if named else None


def suggestMapping(rows: Iterable[SegmentRow], baseClasses: Iterable[Dict[str, Any]],
                   newClassesForUnmatched: bool = False, previous: Optional[SegmentMapping] = None) -> SegmentMapping:
    """A mapping with every segment that matches a base class mapped to it. Unmatched segments stay unmapped
    (the user decides), or become new classes with ``newClassesForUnmatched`` (a new model has no classes).
    ``previous``: the user's choices so far (same base classes), kept for the segments still there."""
    mapping = SegmentMapping(baseClasses)
    keep = previous is not None and previous.baseClasses == mapping.baseClasses
    if keep:
        mapping.newClasses = copy.deepcopy(previous.newClasses)
    for row in rows:
        target = (previous.targetOf(row.name) if keep else None) or suggestTarget(row, mapping.baseClasses)
        if target is not None:
            mapping.setTarget(row.name, target)
        elif newClassesForUnmatched:
            mapping.addNewClass(row)
    mapping.removeUnusedNewClasses()
    return mapping
