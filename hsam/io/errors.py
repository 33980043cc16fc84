"""The error for an input volume that cannot be used; its message says what to do."""
from __future__ import annotations


class VolumeError(ValueError):
    """An input volume cannot be used; the message says what to do."""


class TruncatedError(VolumeError):
    """The file holds less (or damaged) voxel data than its header says."""
