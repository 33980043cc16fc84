"""GUI-free parts of the HSAM Train module: they run in Slicer and, for tests and scripts, with slicer-core.
They build on HSAMSharedLib (engine command lines, worker processes, the job state machine), which ships with
HSAM Segment."""
from .base_models import BaseModel
from .case_folder import loadCaseFiles
from .case_list import ROLES, TRAIN, VALIDATION, CaseList, TrainingCase
from .estimate import Estimate, formatDuration
from .segment_mapping import BACKGROUND, SegmentMapping, segmentRows
from .train_logic import TrainingResult, TrainLogic
from .training_job import TrainingJob
from .training_plot import TrainingPlot
from .training_progress import TrainingProgress
from .training_settings import PANEL_SETTINGS, SCENE_SETTINGS, TrainingSettings, withSettings

__all__ = ["BaseModel", "loadCaseFiles", "ROLES", "TRAIN", "VALIDATION", "CaseList", "TrainingCase", "Estimate",
           "formatDuration", "BACKGROUND", "SegmentMapping", "segmentRows", "TrainingProgress", "TrainingResult",
           "TrainLogic", "TrainingJob", "TrainingPlot", "PANEL_SETTINGS", "SCENE_SETTINGS", "TrainingSettings",
           "withSettings"]
