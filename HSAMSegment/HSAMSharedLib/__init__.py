"""The layer both HSAM modules share, GUI-free: it runs in Slicer and, for tests and scripts, with slicer-core.

The engine runner and its worker processes, the job state machine, the logic base both module logics build on, the
model list, the engine's packages, the MODELS_CHANGED signal and the training-case handoff through the scene. It
ships with HSAM Segment; HSAM Train declares HSAM Segment as its dependency to get it. Two parts need Slicer's GUI
and are not imported here: module_widget (the one widget helper: what both module widgets do alike) and
self_test_support (what both self-tests share)."""
from .dependencies import InstallError, installRequirements, missingRequirements
from .devices import deviceChoices
from .engine import Engine
from .engine_logic import EngineLogic
from .errors import describeFailure
from .job import ACTIVE_STATES, EngineJob, ProcessingState
from .models import ModelInfo, findModel, modelsFromEvents, segmentationModels
from .notifications import MODELS_CHANGED, Notifier
from .thread_worker import InBackground, ThreadWorker
from .training_cases import addTrainingCase
from .worker import WorkerProcess

__all__ = ["InstallError", "installRequirements", "missingRequirements", "deviceChoices", "Engine", "EngineLogic",
           "describeFailure", "ACTIVE_STATES", "EngineJob", "ProcessingState", "ModelInfo", "findModel",
           "modelsFromEvents", "segmentationModels", "MODELS_CHANGED", "Notifier", "InBackground", "ThreadWorker",
           "addTrainingCase", "WorkerProcess"]
