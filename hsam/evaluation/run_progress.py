"""Progress of a whole evaluation: one bar over every slice of every case, so its estimate covers the run.

Per-case bars would restart their estimate at each case; counting slices from the headers first (no voxel is
read) lets one bar and its remaining-time estimate span all cases.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

import numpy as np
import SimpleITK as sitk

from ..progress import Reporter


def axial_slices(path: Union[str, Path]) -> int:
    """How many axial slices a volume has (the voxel axis closest to the patient's feet-head axis), from its
    header alone; 1 when the header cannot be read (the read that follows reports why)."""
    path = Path(path)
    try:
        if path.is_dir():
            return max(1, len(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path))))
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = reader.GetSize()
        direction = np.abs(np.array(reader.GetDirection()).reshape(len(size), len(size)))
        return int(size[int(np.argmax(direction[2][:3]))]) if len(size) >= 3 else 1
    except RuntimeError:
        return 1


def console_log(reporter: Reporter, jsonl: bool) -> Callable[[str], None]:
    """Log lines for people go through tqdm, which lifts the bar off the line first; JSON lines as events."""
    if jsonl:
        return reporter.log

    def write(message: str) -> None:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)

    return write


class RunProgress(Reporter):
    """Passes a case's slice progress on as progress over all cases' slices (stage "segmenting"), log lines to
    ``log``, the rest as is."""

    def __init__(self, inner: Reporter, slices: List[int], log: Optional[Callable[[str], None]] = None) -> None:
        self.inner = inner
        self.log_line = log or inner.log
        self.slices = slices
        self.total = sum(slices)
        self.case = 0

    def start_case(self, index: int) -> None:
        self.case = index

    def event(self, name: str, **fields: Any) -> None:
        if name == "progress":
            done = sum(self.slices[:self.case]) + min(int(fields["done"]), self.slices[self.case])
            self.inner.progress(done, self.total, stage="segmenting", volume=fields.get("case"),
                                index=self.case, cases=len(self.slices))
        elif name == "log":
            self.log_line(fields["message"])
        else:
            self.inner.event(name, **fields)
