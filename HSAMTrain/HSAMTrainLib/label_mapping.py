"""Which segment of the cases is which model class: the rows of the mapping table, suggestions (standard
terminology first, then the name), and new classes that the fine-tuned model learns in addition to the base
model's. Segments are keyed by name (case-insensitive): one row serves every case that has that segment."""
import copy
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional

from .cases import TrainingCase
from .terminology import sameStructure, segmentTerminology, terminologyByName

BACKGROUND = "background"  # target of a segment left out of training (its voxels count as background)


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
            key = segment.GetName().strip().lower()
            if key not in rows:
                terminology = segmentTerminology(segment) or terminologyByName(segment.GetName(), terminologies)
                rows[key] = SegmentRow(segment.GetName(), terminology,
                                       [int(round(255 * c)) for c in segment.GetColor()])
            if case.name not in rows[key].cases:
                rows[key].cases.append(case.name)
    return list(rows.values())


class LabelMapping:
    """Segment name -> class name (or BACKGROUND). ``classes`` are the base model's, followed by new ones; class
    values run 1, 2, ... in that order, so the base model's classes keep their values."""

    def __init__(self, baseClasses: Iterable[Dict[str, Any]]) -> None:
        self.baseClasses = [copy.deepcopy(c) for c in baseClasses]
        self.newClasses: List[Dict[str, Any]] = []
        self.targets: Dict[str, str] = {}

    @property
    def classes(self) -> List[Dict[str, Any]]:
        return [dict(c, value=value) for value, c in enumerate(self.baseClasses + self.newClasses, 1)]

    def targetOf(self, segmentName: str) -> Optional[str]:
        return self.targets.get(segmentName.strip().lower())

    def setTarget(self, segmentName: str, target: str) -> None:
        """``target``: a class name, or BACKGROUND to leave the segment out."""
        if target != BACKGROUND and self.classValue(target) is None:
            raise ValueError(f"{target!r} is not a class of the model; add it as a new class first")
        self.targets[segmentName.strip().lower()] = target

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
        used = {t.lower() for t in self.targets.values()}
        self.newClasses = [c for c in self.newClasses if c["name"].lower() in used]

    def classValue(self, className: str) -> Optional[int]:
        key = className.strip().lower()
        return next((c["value"] for c in self.classes if c["name"].lower() == key), None)

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
    def fromDict(cls, data: Dict[str, Any]) -> "LabelMapping":
        mapping = cls(data.get("base_classes", []))
        mapping.newClasses = list(data.get("new_classes", []))
        mapping.targets = dict(data.get("targets", {}))
        return mapping


def suggestTarget(row: SegmentRow, classes: Iterable[Dict[str, Any]]) -> Optional[str]:
    """The class with the same standard terminology, else the class with the same name, else None."""
    classes = list(classes)
    for c in classes:
        if sameStructure(row.terminology, c.get("terminology")):
            return c["name"]
    key = row.name.strip().lower()
    return next((c["name"] for c in classes if c["name"].lower() == key), None)


def suggestMapping(rows: Iterable[SegmentRow], baseClasses: Iterable[Dict[str, Any]],
                   newClassesForUnmatched: bool = False, previous: Optional[LabelMapping] = None) -> LabelMapping:
    """A mapping with every segment that matches a base class mapped to it. Unmatched segments stay unmapped
    (the user decides), or become new classes with ``newClassesForUnmatched`` (a new model has no classes).
    ``previous``: the user's choices so far (same base classes), kept for the segments still there."""
    mapping = LabelMapping(baseClasses)
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
