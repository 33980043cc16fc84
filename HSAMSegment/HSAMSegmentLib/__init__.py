"""GUI-free parts of the HSAM Segment module: they run in Slicer and, for tests and scripts, with slicer-core.

module_widget, the widget code that HSAM Segment and HSAM Train share, needs Slicer's GUI: it is not imported
here."""
from .dependencies import InstallError, installRequirements, missingRequirements
from .devices import deviceChoices
from .engine import Engine
from .engine_logic import EngineLogic
from .errors import describeFailure
from .job import EngineJob, ProcessingState, SegmentationJob
from .models import ModelInfo, findModel, modelsFromEvents, segmentationModels
from .segment_logic import SegmentLogic
from .training_cases import addTrainingCase
from .worker import WorkerProcess

__all__ = ["InstallError", "installRequirements", "missingRequirements", "deviceChoices", "Engine", "EngineLogic",
           "describeFailure", "EngineJob", "ProcessingState", "SegmentationJob", "ModelInfo", "findModel",
           "modelsFromEvents", "segmentationModels", "SegmentLogic", "addTrainingCase", "WorkerProcess"]
