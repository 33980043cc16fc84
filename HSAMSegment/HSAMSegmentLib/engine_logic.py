"""What the modules' logics share: the engine they run, its models folder, the current job, and the model list."""
from pathlib import Path
from typing import List, Optional

from .engine import Engine, defaultModelsHome
from .job import EngineJob
from .models import ModelInfo, modelsFromEvents
from .result_import import ensureSegmentationConverters
from .worker import WorkerProcess


class EngineLogic:
    """Without the Slicer application (scripts on slicer-core), create the logic before any segmentation node:
    a segmentation takes its representation converters (used for the 3D surfaces) when it is created."""

    def __init__(self, engine: Optional[Engine] = None):
        ensureSegmentationConverters()
        self.engine = engine or Engine()
        self.job: Optional[EngineJob] = None

    @property
    def modelsHome(self) -> Path:
        return self.engine.modelsHome or defaultModelsHome()

    def setModelsHome(self, folder: Optional[str]) -> None:
        """Where the engine keeps its models (None or empty: the engine's default)."""
        self.engine.modelsHome = Path(folder) if folder else None

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
