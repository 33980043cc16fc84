"""What "Start fine-tuning" does, without any GUI: usable from the module's widget, from scripts and from tests
outside Slicer (slicer-core)."""
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

from HSAMSharedLib import EngineLogic, ModelInfo, deviceChoices
from HSAMSharedLib.training_cases import CASES_FOLDER

from .base_models import BaseModel, baseModels, findBaseModel
from .case_list import CaseList, TrainingCase
from .estimate import Estimate, deviceKind, estimateRun, readMachineFactors
from .input_check import inputProblems
from .segment_mapping import SegmentMapping, segmentRows, suggestMapping
from .training_job import TrainingJob
from .training_run import TrainingRun, listRuns
from .training_settings import TrainingSettings

RUNS_FOLDER = "training_runs"


@dataclass
class TrainingResult:
    modelId: str
    path: Path  # the registered model's folder
    comparison: Dict[str, Any]  # validation Dice of the base and the fine-tuned model (comparison.py)
    runFolder: Path


class TrainLogic(EngineLogic):
    def __init__(self, engine=None):
        super().__init__(engine)
        self.job: Optional[TrainingJob] = None
        self._gpuAvailable: Optional[bool] = None

    @property
    def runsFolder(self) -> Path:
        return self.modelsHome / RUNS_FOLDER

    @property
    def trainingCasesFolder(self) -> Path:
        return self.modelsHome / CASES_FOLDER  # where HSAM Segment's "Add to training cases" saves cases

    def baseModels(self) -> List[BaseModel]:
        return baseModels(self.listModels())

    def suggestMapping(self, cases: Iterable[TrainingCase], base: BaseModel,
                       previous: Optional[SegmentMapping] = None) -> SegmentMapping:
        """Segments matched to the base model's classes (keeping the choices of ``previous``); for a new model
        every other segment is a new class."""
        return suggestMapping(segmentRows(cases), base.classes, not base.isModel, previous)

    def estimate(self, cases: Iterable[TrainingCase], settings: TrainingSettings, base: BaseModel,
                 calibrated: bool = True) -> Estimate:
        """Run time on this computer; ``calibrated`` applies what earlier runs here measured."""
        kind = self.deviceKind(settings)
        factor = readMachineFactors(self.runsFolder).get(kind, 1.0) if calibrated else 1.0
        return estimateRun(cases, settings, base.backbone, kind, base.isModel, factor)

    def deviceKind(self, settings: TrainingSettings) -> str:
        """cpu, cuda or mps: where the run will be (whether there is a GPU is looked up once)."""
        if self._gpuAvailable is None:
            self._gpuAvailable = any(d.startswith("cuda") for d in deviceChoices())
        return deviceKind(settings.device, self._gpuAvailable)

    def problems(self, cases: Sequence[TrainingCase], mapping: SegmentMapping, outputName: str,
                 models: Optional[Sequence[ModelInfo]] = None) -> List[str]:
        """Everything that would stop the run; ``models``: the registry (listed when not given)."""
        models = self.listModels() if models is None else models
        return inputProblems(cases, mapping, outputName, [m.id for m in models])

    def startTraining(self, cases: Union[CaseList, Sequence[TrainingCase]], labelMapping: SegmentMapping,
                      baseModel: Union[str, BaseModel], outputName: str, *,
                      settings: Optional[TrainingSettings] = None,
                      progressCallback: Optional[Callable[[dict], None]] = None,
                      models: Optional[Sequence[ModelInfo]] = None) -> TrainingJob:
        """Check everything and start training (non-blocking): returns the job, which the caller drives with
        ``job.poll()``; the cases are written in the background as the job's first step. Raises ValueError listing
        every problem found. ``models``: the registry as the caller last listed it (a widget holds it); None lists
        it here, which starts a process that imports torch (seconds): never on Slicer's GUI thread."""
        if self.isRunning:
            raise RuntimeError("A training run is already running: wait for it or cancel it first.")
        cases = list(cases)
        settings = settings or TrainingSettings()
        models = self.listModels() if models is None else list(models)
        base = baseModel if isinstance(baseModel, BaseModel) else findBaseModel(baseModels(models), baseModel)
        found = self.problems(cases, labelMapping, outputName, models)
        if found:
            raise ValueError("\n".join(found))
        if (self.runsFolder / outputName).exists():
            raise ValueError(f"A stopped run named {outputName!r} exists: resume it, discard it (discardRun), or "
                             "choose another output model name.")
        run = TrainingRun(self.runsFolder / outputName, outputName, baseModel=base.engineBase,
                          baseIsModel=base.isModel, backbone=base.backbone, baseOptions=base.engineOptions(),
                          settings=settings, mapping=labelMapping, cases=[TrainingRun.caseRecord(c) for c in cases],
                          deviceKind=self.deviceKind(settings),
                          estimatedSeconds=self.estimate(cases, settings, base, calibrated=False).seconds)
        self.job = TrainingJob(self.engine, run, cases, progressCallback)
        self.job.start()
        return self.job

    def resumeTraining(self, outputName: str, *,
                       progressCallback: Optional[Callable[[dict], None]] = None) -> TrainingJob:
        """Continue a stopped (or failed) run from its last checkpoint, with its own cases and settings."""
        if self.isRunning:
            raise RuntimeError("A training run is already running: wait for it or cancel it first.")
        run = TrainingRun.load(self.runsFolder / outputName)
        if not run.resumable:
            raise ValueError(f"The run {outputName!r} has finished: its model is {run.registeredPath}.")
        self.job = TrainingJob(self.engine, run, None, progressCallback)
        self.job.start()
        return self.job

    def stoppedRuns(self) -> List[TrainingRun]:
        return [run for run in listRuns(self.runsFolder) if run.resumable]

    def discardRun(self, outputName: str) -> None:
        shutil.rmtree(self.runsFolder / outputName, ignore_errors=True)

    def train(self, cases, labelMapping: SegmentMapping, baseModel: Union[str, BaseModel], outputName: str, *,
              settings: Optional[TrainingSettings] = None,
              progressCallback: Optional[Callable[[dict], None]] = None) -> TrainingResult:
        """Fine-tune and register the model; waits for the end (blocking, no Qt needed). Raises ValueError for
        problems found before the start and RuntimeError with the engine's message when the run fails."""
        job = self.startTraining(cases, labelMapping, baseModel, outputName, settings=settings,
                                 progressCallback=progressCallback)
        return self.waitForResult(job)

    @staticmethod
    def waitForResult(job: TrainingJob) -> TrainingResult:
        job.wait()
        if job.error:
            raise RuntimeError(job.error)
        if job.cancelled:
            raise RuntimeError(f"Training was cancelled; resume it with resumeTraining({job.run.outputName!r}).")
        return TrainingResult(job.run.outputName, job.modelPath, job.comparison or {}, job.run.folder)
