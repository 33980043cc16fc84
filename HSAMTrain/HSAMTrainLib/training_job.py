"""One fine-tuning run as an engine job (HSAMSharedLib's state machine), in the run's own folder:

    write the cases (a new run only; in a thread) -> [grow the base model by new classes] -> hsam train (--resume when a
    checkpoint exists) -> hsam evaluate the base model and the fine-tuned model on the validation cases ->
    the comparison -> hsam models record-evaluation (puts it into the model card) -> hsam models import (registers
    the model) -> IDLE

Cancel stops ``hsam train`` with SIGTERM: the engine saves a checkpoint, and the run folder stays for Resume."""
import json
import shutil
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from HSAMSharedLib import Engine, EngineJob
from HSAMSharedLib.job import Step
from HSAMSharedLib.notifications import MODELS_CHANGED
from HSAMSharedLib.thread_worker import InBackground

from .case_export import caseFiles, writeCaseFiles
from .case_list import VALIDATION, TrainingCase
from .comparison import COMPARISON_FILE, compareModels, comparisonLines, organDice, writeComparisonRecord
from .estimate import readMachineFactors, recordRunTime
from .training_progress import TrainingProgress
from .training_run import FINISHED_STATUSES, TrainingRun

CLASSES_FILE = "classes.json"


class TrainingJob(EngineJob):
    task = "training"
    cancelGraceSeconds = 120.0  # the engine saves its state after the current step, which can be slow on a CPU

    def __init__(self, engine: Engine, run: TrainingRun, cases: Optional[Sequence[TrainingCase]] = None,
                 progressCallback: Optional[Callable[[dict], None]] = None):
        """``cases``: export them first (a new run); None: resume the run in ``run.folder``."""
        super().__init__(engine, self._onEvent, workDir=run.folder)
        self.run = run
        self.cases = list(cases) if cases is not None else None
        self.userCallback = progressCallback
        self.progress = TrainingProgress()
        self.comparison: Optional[dict] = None

    @property
    def modelPath(self) -> Optional[Path]:
        return Path(self.run.registeredPath) if self.run.registeredPath else None

    def _onEvent(self, event: dict) -> None:
        self.progress.handle(event)
        if self.userCallback is not None:
            self.userCallback(event)

    def prepare(self) -> List[Step]:
        run = self.run
        steps: List[Step] = []
        if self.cases is not None:
            files = [caseFiles(case, run.mapping) for case in self.cases]  # copied out of the scene (GUI thread)
            manifestRows = [f.row for f in files]
            run.save()
            steps.append(InBackground(
                lambda worker: writeCaseFiles(files, run.mapping, run.folder, worker.checkCancel),
                f"Writing {len(files)} cases to {run.folder}"))
        else:
            manifestRows = json.loads(run.manifest.read_text(encoding="utf-8"))["cases"]
        for record in run.history():  # a resumed run: its curve so far
            self.progress.addEpoch(record)
        base = run.baseModel
        if run.needsGrownBase:
            base = str(run.grownBaseDir)
            if not (run.grownBaseDir / "model.json").is_file():
                classes = run.folder / CLASSES_FILE
                classes.write_text(json.dumps(run.mapping.classes, indent=2), encoding="utf-8")
                steps.append(self.engine.modelsCommand("grow", run.baseModel, run.grownBaseDir, classes))
        if run.trainingStatus() not in FINISHED_STATUSES:
            resume = run.stateFile.is_file()
            if not resume and run.modelDir.exists():
                shutil.rmtree(run.modelDir)  # stopped before its first checkpoint: start it again
            steps.append(self.engine.trainCommand(run.manifest, base, run.modelDir, run.outputName,
                                                  run.baseOptions + run.settings.engineOptions(), resume))
        images, labels = self._validationFiles(manifestRows)
        device = run.settings.device
        if run.baseIsModel:
            steps.append(self.engine.evaluateCommand(run.baseModel, images, labels, run.evaluationDir("base"),
                                                     device))
        steps.append(self.engine.evaluateCommand(run.modelDir, images, labels, run.evaluationDir("fine-tuned"),
                                                 device))
        steps.append(self._writeComparison)
        steps.append(self.engine.modelsCommand("record-evaluation", str(run.modelDir),
                                               str(run.folder / COMPARISON_FILE)))
        steps.append(self.engine.modelsCommand("import", str(run.modelDir), "--id", run.outputName))
        return steps

    def _validationFiles(self, manifestRows):
        rows = [row for row in manifestRows if row.get("split") == VALIDATION]
        return ([self.run.folder / row["image"] for row in rows], [self.run.folder / row["label"] for row in rows])

    def _writeComparison(self) -> None:
        run = self.run
        base = organDice(run.evaluationDir("base")) if run.baseIsModel else None
        self.comparison = compareModels(run.baseModel if run.baseIsModel else f"new model ({run.backbone})", base,
                                        organDice(run.evaluationDir("fine-tuned")), run.validationCases)
        writeComparisonRecord(run.folder, self.comparison,
                              {"case_details": run.cases, "label_mapping": dict(run.mapping.targets),
                               "new_classes": [c["name"] for c in run.mapping.newClasses]})
        for line in comparisonLines(self.comparison):
            self._report({"event": "log", "message": line})

    def complete(self) -> None:
        run = self.run
        if not self.result or not self.result.get("path"):
            raise RuntimeError(f"The model was trained ({run.modelDir}) but registering it reported no folder.")
        run.registeredPath = str(self.result["path"])
        run.save()
        if self.cases is not None and run.estimatedSeconds:  # uninterrupted: a fair measure of this machine
            runs = run.folder.parent
            recordRunTime(runs, run.deviceKind, run.estimatedSeconds, self.seconds,
                          readMachineFactors(runs).get(run.deviceKind))
        self._report({"event": "log", "message": f"Model {run.outputName} is registered in {run.registeredPath} "
                                                  f"(training took {self.seconds / 60:.1f} min)."})
        MODELS_CHANGED.emit("model registered")  # both modules list their models again
