"""One "Segment organs" run: export the volume, (download the model,) segment, import the result."""
from typing import Callable, List, Optional, Sequence

from HSAMSharedLib.engine import Engine
from HSAMSharedLib.job import EngineJob, Step
from HSAMSharedLib.notifications import MODELS_CHANGED

from .result_import import importSegmentation
from .volume_export import exportVolume

INPUT_FILE = "input.nrrd"
RESULT_FILE = "result.seg.nrrd"


class SegmentationJob(EngineJob):
    task = "segmentation"

    def __init__(self, engine: Engine, inputVolume, outputSegmentation=None, *, model: Optional[str] = None,
                 device: str = "auto", organs: Optional[Sequence[str]] = None, postprocess: bool = True,
                 show3D: bool = True, downloadModel: Optional[str] = None,
                 progressCallback: Optional[Callable[[dict], None]] = None, tempRoot: Optional[str] = None,
                 keepTempFiles: bool = False):
        """``outputSegmentation`` None: a new segmentation node is added to the scene when the result arrives.
        ``downloadModel``: a registry id to download first (the caller has the user's consent).
        ``progressCallback`` also receives the engine's ``progress``, ``log`` and ``result`` events."""
        super().__init__(engine, progressCallback, tempRoot, keepTempFiles)
        self.inputVolume = inputVolume
        self.outputSegmentation = outputSegmentation
        self.model = model
        self.device = device
        self.organs = list(organs) if organs else None
        self.postprocess = postprocess
        self.show3D = show3D
        self.downloadModel = downloadModel

    def prepare(self) -> List[Step]:
        inputPath = exportVolume(self.inputVolume, self.workDir / INPUT_FILE)
        steps: List[Step] = []
        if self.downloadModel:
            steps.append(self.engine.downloadCommand(self.downloadModel))
        steps.append(self.engine.segmentCommand(inputPath, self.workDir / RESULT_FILE, self.model, self.device,
                                                self.organs, self.postprocess))
        return steps

    def complete(self) -> None:
        if self.sceneClosed or self.inputVolume.GetScene() is None:
            raise RuntimeError("The scene was closed during the segmentation: nothing was imported.")
        if self.outputSegmentation is None:
            self.outputSegmentation = self.inputVolume.GetScene().AddNewNodeByClass(
                "vtkMRMLSegmentationNode", self.inputVolume.GetName() + " segmentation")
        try:
            importSegmentation(self.workDir / RESULT_FILE, self.outputSegmentation, self.inputVolume, self.show3D)
        except Exception as exc:
            raise RuntimeError(f"Could not import the result: {exc}") from exc
        self._report({"event": "log", "message": f"Segmentation finished in {self.seconds:.1f} s."})
        if self.downloadModel:
            MODELS_CHANGED.emit("model downloaded")  # its state changed to installed, in both modules' lists
