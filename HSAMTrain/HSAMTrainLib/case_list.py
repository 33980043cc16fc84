"""The cases of a fine-tuning run: volume + segmentation pairs from the scene, each with a name, a role
(training or validation) and a summary of what it shows. The user's nodes are only read, never changed.

A scan is one case only: the same volume node, or another node with the same voxels and geometry (for example
the saved copy of a case loaded from the training cases folder), is refused, so that no scan ends up both
training and validating."""
import hashlib
import re
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

import numpy as np

from .segments_on_grid import axialAxis, segmentIds, segmentsOnVolumeGrid

TRAIN, VALIDATION = "train", "val"
ROLES = (TRAIN, VALIDATION)


@dataclass
class CaseSummary:
    slices: int  # axial slices of the volume
    labelledSlices: int  # axial slices that show at least one segment
    segmentVoxels: Dict[str, int]  # segment name -> voxels (0: an empty segment)

    @property
    def organs(self) -> List[str]:
        return [name for name, voxels in self.segmentVoxels.items() if voxels]


def summarizeCase(volumeNode, segmentationNode) -> CaseSummary:
    ids = segmentIds(segmentationNode)
    labels, _ = segmentsOnVolumeGrid(segmentationNode, volumeNode, ids)
    axis = axialAxis(volumeNode)
    other = tuple(a for a in range(3) if a != axis)
    counts = np.bincount(labels.ravel(), minlength=len(ids) + 1)
    segmentation = segmentationNode.GetSegmentation()
    return CaseSummary(slices=labels.shape[axis], labelledSlices=int(labels.any(axis=other).sum()),
                       segmentVoxels={segmentation.GetSegment(segmentId).GetName(): int(counts[n + 1])
                                      for n, segmentId in enumerate(ids)})


def volumeFingerprint(volumeNode) -> str:
    """A digest of the voxels and the voxel-to-patient geometry: equal for two nodes that show the same scan."""
    import slicer
    import vtk

    digest = hashlib.blake2b(digest_size=16)
    voxels = np.ascontiguousarray(slicer.util.arrayFromVolume(volumeNode))
    ijkToRas = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRas)
    geometry = [round(ijkToRas.GetElement(r, c), 4) for r in range(3) for c in range(4)]
    digest.update(repr((voxels.shape, str(voxels.dtype), geometry)).encode())
    digest.update(voxels.data)
    return digest.hexdigest()


@dataclass
class TrainingCase:
    name: str  # unique in the run; also the exported files' name
    volumeNode: object
    segmentationNode: object
    role: str
    summary: CaseSummary
    fingerprint: str = ""  # volumeFingerprint of the volume


class CaseList:
    """An ordered list of cases; names stay unique and at least the second case added validates by default."""

    def __init__(self) -> None:
        self.cases: List[TrainingCase] = []

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[TrainingCase]:
        return iter(self.cases)

    def __getitem__(self, index: int) -> TrainingCase:
        return self.cases[index]

    def add(self, volumeNode, segmentationNode, role: Optional[str] = None) -> TrainingCase:
        if volumeNode is None or segmentationNode is None:
            raise ValueError("Select a volume and its segmentation.")
        if any(c.volumeNode is volumeNode and c.segmentationNode is segmentationNode for c in self.cases):
            raise ValueError(f"{volumeNode.GetName()} with {segmentationNode.GetName()} is already a case.")
        fingerprint = volumeFingerprint(volumeNode)
        same = next((c for c in self.cases if c.volumeNode is volumeNode or c.fingerprint == fingerprint), None)
        if same is not None:
            raise ValueError(f"{volumeNode.GetName()} shows the same scan as case {same.name}: a scan can be one "
                             "case only (training or validation, not both). Remove that case first to use another "
                             "segmentation of it.")
        if role is None:  # with few cases, the second one is the obvious validation case
            role = VALIDATION if self.cases and all(c.role == TRAIN for c in self.cases) else TRAIN
        if role not in ROLES:
            raise ValueError(f"role {role!r}: use one of {', '.join(ROLES)}")
        case = TrainingCase(self._uniqueName(volumeNode.GetName()), volumeNode, segmentationNode, role,
                            summarizeCase(volumeNode, segmentationNode), fingerprint)
        self.cases.append(case)
        return case

    def remove(self, index: int) -> None:
        del self.cases[index]

    def removeCasesOf(self, node) -> bool:
        """Drop the cases that use ``node`` (it is leaving the scene); True if any was dropped."""
        kept = [c for c in self.cases if node not in (c.volumeNode, c.segmentationNode)]
        dropped = len(kept) != len(self.cases)
        self.cases = kept
        return dropped

    def refreshSummaries(self) -> None:
        """Summarize again (the segmentations may have been edited since they were added)."""
        for case in self.cases:
            case.summary = summarizeCase(case.volumeNode, case.segmentationNode)

    def move(self, index: int, offset: int) -> int:
        """Move a case up (offset < 0) or down; returns its new index."""
        target = min(max(index + offset, 0), len(self.cases) - 1)
        self.cases.insert(target, self.cases.pop(index))
        return target

    def _uniqueName(self, nodeName: str) -> str:
        base = re.sub(r"[^A-Za-z0-9._+-]+", "_", nodeName).strip("._") or "case"
        taken = {c.name for c in self.cases}
        name, index = base, 2
        while name in taken:
            name, index = f"{base}_{index}", index + 1
        return name
