"""GUI-free parts of the HSAM Segment module: they run in Slicer and, for tests and scripts, with slicer-core.

This package is the layer both modules share (HSAM Train declares HSAM Segment as its dependency to get it): the
engine runner, jobs, logics, the MODELS_CHANGED signal and the training-case handoff through the scene. Two parts
need Slicer's GUI and are not imported here: module_widget (the one widget helper: what both module widgets do
alike) and self_test_support (what both self-tests share)."""
from .dependencies import InstallError, installRequirements, missingRequirements
from .devices import deviceChoices
from .engine import Engine
from .engine_logic import EngineLogic
from .errors import describeFailure
from .job import EngineJob, ProcessingState, SegmentationJob
from .models import ModelInfo, findModel, modelsFromEvents, segmentationModels
from .notifications import MODELS_CHANGED, Notifier
from .segment_logic import SegmentLogic, organsToSegment
from .thread_worker import InBackground, ThreadWorker
from .training_cases import addTrainingCase
from .worker import WorkerProcess

__all__ = ["InstallError", "installRequirements", "missingRequirements", "deviceChoices", "Engine", "EngineLogic",
           "describeFailure", "EngineJob", "ProcessingState", "SegmentationJob", "ModelInfo", "findModel",
           "modelsFromEvents", "segmentationModels", "MODELS_CHANGED", "Notifier", "SegmentLogic", "organsToSegment",
           "InBackground", "ThreadWorker", "addTrainingCase", "WorkerProcess"]
