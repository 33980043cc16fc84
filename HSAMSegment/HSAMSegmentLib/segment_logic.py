"""What "Segment organs" does, without any GUI: usable from the module's widget, from scripts and from tests
outside Slicer (slicer-core)."""
import shutil
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from .engine import Engine, defaultModelsHome
from .job import SegmentationJob
from .models import ModelInfo, modelsFromEvents
from .result_import import ensureSegmentationConverters
from .worker import WorkerProcess


class SegmentLogic:
    """Without the Slicer application (scripts on slicer-core), create the logic before any segmentation node:
    a segmentation takes its representation converters (used for the 3D surfaces) when it is created."""

    def __init__(self, engine: Optional[Engine] = None):
        ensureSegmentationConverters()
        self.engine = engine or Engine()
        self.job: Optional[SegmentationJob] = None
        self.tempRoot: Optional[str] = None
        self.keepTempFiles = False  # for debugging: keep the exported volume and the engine's result

    @property
    def modelsHome(self) -> Path:
        return self.engine.modelsHome or defaultModelsHome()

    def setModelsHome(self, folder: Optional[str]) -> None:
        """Where the engine keeps its models (None or empty: the engine's default)."""
        self.engine.modelsHome = Path(folder) if folder else None

    @property
    def isRunning(self) -> bool:
        return self.job is not None and self.job.isActive

    def startSegmentation(self, inputVolume, outputSegmentation=None, model: Optional[str] = None,
                          device: str = "auto", organs: Optional[Sequence[str]] = None, postprocess: bool = True,
                          show3D: bool = True, downloadModel: Optional[str] = None,
                          progressCallback: Optional[Callable[[dict], None]] = None) -> SegmentationJob:
        """Start segmenting (non-blocking): returns the job, which the caller drives with ``job.poll()``.
        Refuses to start while another job is active, so a second click never starts a second run."""
        if self.isRunning:
            raise RuntimeError("A segmentation is already running: wait for it or cancel it first.")
        if inputVolume is None:
            raise ValueError("Select an input volume.")
        self.job = SegmentationJob(self.engine, inputVolume, outputSegmentation, model, device, organs, postprocess,
                                   show3D, downloadModel, progressCallback, self.tempRoot, self.keepTempFiles)
        self.job.start()
        return self.job

    def process(self, inputVolume, outputSegmentation, model: Optional[str] = None, device: str = "auto",
                organs: Optional[Sequence[str]] = None, progressCallback: Optional[Callable[[dict], None]] = None,
                postprocess: bool = True, show3D: bool = True, downloadModel: Optional[str] = None):
        """Segment ``inputVolume`` into ``outputSegmentation`` and wait for the result (blocking; no Qt needed).

        model: a registry id or a model folder (None: the engine's default model). device: auto, cpu, cuda:N
        or mps. organs: names from the model card (None: all). Returns the segmentation node (a new one when
        ``outputSegmentation`` is None); raises RuntimeError with the engine's message when it fails."""
        job = self.startSegmentation(inputVolume, outputSegmentation, model, device, organs, postprocess, show3D,
                                     downloadModel, progressCallback)
        job.wait()
        if job.error:
            raise RuntimeError(job.error)
        return job.outputSegmentation

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

    def clearDownloadedModels(self, models: Sequence[ModelInfo]) -> List[Path]:
        """Delete what was downloaded from the catalog (``models`` from ``listModels``) and partial downloads.
        Models imported or trained here are kept."""
        targets = [m.path for m in models if m.downloaded and m.path is not None]
        targets.append(self.modelsHome / "downloads")
        removed = []
        for path in targets:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.is_file():
                path.unlink()
            else:
                continue
            removed.append(path)
        return removed
