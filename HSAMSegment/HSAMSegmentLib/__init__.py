"""GUI-free parts of HSAM Segment itself: segmenting a volume node and bringing the result into the scene. What
both modules share (engine, jobs, models, packages) is in HSAMSharedLib."""
from .segment_logic import SegmentLogic, organsToSegment
from .segmentation_job import SegmentationJob

__all__ = ["SegmentLogic", "organsToSegment", "SegmentationJob"]
