"""What the modules' logics share: the engine they run, its models folder, the current job, the model list, the
engine's packages, and what a closing scene does to a running job."""
from pathlib import Path
from typing import Callable, List, Optional

from .dependencies import installRequirements, missingRequirements
from .engine import Engine, defaultModelsHome
from .job import EngineJob
from .models import ModelInfo, modelsFromEvents
from .notifications import MODELS_CHANGED
from .segmentations import ensureSegmentationConverters
from .worker import WorkerProcess


class EngineLogic:
    """Without the Slicer application (scripts on slicer-core), create the logic before any segmentation node:
    a segmentation takes its representation converters (used for the 3D surfaces) when it is created."""

    modelsChanged = MODELS_CHANGED  # shared by every logic of both modules

    def __init__(self, engine: Optional[Engine] = None):
        ensureSegmentationConverters()
        self.engine = engine or Engine()
        self.job: Optional[EngineJob] = None
        self._watchedScene = None
        self._sceneCloseTag = None

    @property
    def modelsHome(self) -> Path:
        return self.engine.modelsHome or defaultModelsHome()

    def setModelsHome(self, folder: Optional[str]) -> None:
        """Where the engine keeps its models (None or empty: the engine's default)."""
        self.engine.modelsHome = Path(folder) if folder else None

    @staticmethod
    def notifyModelsChanged(reason: str) -> None:
        """Tell every listener (both modules' widgets) to read the model list again."""
        MODELS_CHANGED.emit(reason)

    @staticmethod
    def missingPackages() -> list:
        """The engine's Python packages that are not installed (checked without importing them)."""
        return missingRequirements()

    def installMissingPackages(self, log: Callable[[str], None] = print) -> list:
        """Install what is missing (call only after the user agreed); both modules then list models again."""
        missing = missingRequirements()
        if missing:
            installRequirements(missing, log)
            self.notifyModelsChanged("packages installed")
        return missing

    # A scene that closes while a job runs

    def cancelOnSceneClose(self, scene) -> None:
        """Cancel the running job (without waiting for it) when ``scene`` starts closing: the job then brings
        nothing into the scene, and a training run keeps its checkpoint for Resume."""
        self.stopWatchingScene()
        self._watchedScene = scene
        self._sceneCloseTag = scene.AddObserver(scene.StartCloseEvent, self._onSceneStartClose)

    def stopWatchingScene(self) -> None:
        if self._watchedScene is not None:
            self._watchedScene.RemoveObserver(self._sceneCloseTag)
        self._watchedScene = self._sceneCloseTag = None

    def _onSceneStartClose(self, caller=None, event=None) -> None:
        if self.isRunning:
            self.job.sceneClosed = True
            self.cancel()

    @property
    def isRunning(self) -> bool:
        return self.job is not None and self.job.isActive

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def startModelListing(self) -> WorkerProcess:
        """``hsam models list`` in the background; read it with ``modelsFromEvents(worker.events())``."""
        worker = WorkerProcess(self.engine.modelsCommand("list"), env=self.engine.environment())
        worker.start()
        return worker

    def listModels(self, timeout: float = 120.0) -> List[ModelInfo]:
        """Every registry entry, models and base weights (blocking)."""
        worker = self.startModelListing()
        if worker.wait(timeout) is None:
            worker.kill()
            raise RuntimeError("Listing the models took too long.")
        events = worker.events()
        if worker.returncode != 0:
            raise RuntimeError(worker.errorText() or "Could not list the models.")
        return modelsFromEvents(events)
