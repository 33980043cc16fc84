"""What "Segment organs" does, without any GUI: usable from the module's widget, from scripts and from tests
outside Slicer (slicer-core)."""
import shutil
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from HSAMSharedLib.engine import Engine
from HSAMSharedLib.engine_logic import EngineLogic
from HSAMSharedLib.models import ModelInfo

from .segmentation_job import SegmentationJob

NO_ORGAN = "Check at least one organ to segment."


def organsToSegment(checked: Sequence[str], available: Sequence[str]) -> Optional[List[str]]:
    """The ``organs`` argument for the organs checked in the panel: None when all are (the model's default),
    the checked ones for a subset; none checked is refused (it never silently means all)."""
    checked = [name for name in available if name in set(checked)]
    if not checked:
        raise ValueError(NO_ORGAN)
    return None if len(checked) == len(available) else checked


class SegmentLogic(EngineLogic):
    def __init__(self, engine: Optional[Engine] = None):
        super().__init__(engine)
        self.job: Optional[SegmentationJob] = None
        self.tempRoot: Optional[str] = None
        self.keepTempFiles = False  # for debugging: keep the exported volume and the engine's result

    def startSegmentation(self, inputVolume, outputSegmentation=None, *, model: Optional[str] = None,
                          device: str = "auto", organs: Optional[Sequence[str]] = None, postprocess: bool = True,
                          show3D: bool = True, downloadModel: Optional[str] = None,
                          progressCallback: Optional[Callable[[dict], None]] = None) -> SegmentationJob:
        """Start segmenting (non-blocking): returns the job, which the caller drives with ``job.poll()``.
        Refuses to start while another job is active, so a second click never starts a second run."""
        if self.isRunning:
            raise RuntimeError("A segmentation is already running: wait for it or cancel it first.")
        if inputVolume is None:
            raise ValueError("Select an input volume.")
        if organs is not None and not list(organs):
            raise ValueError(NO_ORGAN + " (organs=None segments every organ of the model)")
        self.job = SegmentationJob(self.engine, inputVolume, outputSegmentation, model=model, device=device,
                                   organs=organs, postprocess=postprocess, show3D=show3D, downloadModel=downloadModel,
                                   progressCallback=progressCallback, tempRoot=self.tempRoot,
                                   keepTempFiles=self.keepTempFiles)
        self.job.start()
        return self.job

    def process(self, inputVolume, outputSegmentation=None, **options):
        """Segment ``inputVolume`` into ``outputSegmentation`` and wait for the result (blocking; no Qt needed).

        ``options`` are startSegmentation's, by name: model, a registry id or a model folder (None: the engine's
        default model); device: auto, cpu, cuda:N or mps; organs: names from the model card (None: all; an empty
        list is refused); postprocess, show3D, downloadModel, progressCallback. Returns the
        segmentation node (a new one when ``outputSegmentation`` is None); raises RuntimeError with the engine's message when it fails."""
        job = self.startSegmentation(inputVolume, outputSegmentation, **options)
        job.wait()
        if job.error:
            raise RuntimeError(job.error)
        return job.outputSegmentation

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
        self.notifyModelsChanged("models deleted")
        return removed
