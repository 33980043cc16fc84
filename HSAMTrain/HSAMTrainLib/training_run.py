"""A fine-tuning run on disk: one folder per output model in the runs folder, holding the exported cases and
their manifest, the engine's output model and training state (for Resume), the evaluations, and ``run.json``:
what the run is (base model, classes, settings, cases), so that it can be resumed after Slicer restarts."""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from HSAMSharedLib.training_cases import writeJsonAtomic

from .case_export import MANIFEST_FILE
from .case_list import VALIDATION, TrainingCase
from .segment_mapping import SegmentMapping
from .training_settings import TrainingSettings

RUN_FILE = "run.json"
MODEL_FOLDER = "model"  # the engine's --out
GROWN_BASE_FOLDER = "base-with-new-classes"
EVALUATION_FOLDER = "evaluation"
STATE_FILE = Path("training") / "state.pt"  # the engine's checkpoint inside --out
FINISHED_STATUSES = ("complete", "early-stopped")


@dataclass
class TrainingRun:
    folder: Path
    outputName: str
    baseModel: str  # registry id or model folder; for a new model, the backbone name
    baseIsModel: bool
    backbone: str
    baseOptions: List[str]  # further hsam train options the base needs (a SAM checkpoint file)
    settings: TrainingSettings
    mapping: SegmentMapping
    cases: List[Dict[str, Any]] = field(default_factory=list)  # name, role, slices, labelled slices, organs
    deviceKind: str = "cpu"
    estimatedSeconds: float = 0.0  # without this machine's factor, for calibrating it
    registeredPath: str = ""

    @staticmethod
    def caseRecord(case: TrainingCase) -> Dict[str, Any]:
        return {"name": case.name, "role": case.role, "slices": case.summary.slices,
                "labelled_slices": case.summary.labelledSlices, "organs": case.summary.organs}

    @property
    def manifest(self) -> Path:
        return self.folder / MANIFEST_FILE

    @property
    def modelDir(self) -> Path:
        return self.folder / MODEL_FOLDER

    @property
    def grownBaseDir(self) -> Path:
        return self.folder / GROWN_BASE_FOLDER

    @property
    def stateFile(self) -> Path:
        return self.modelDir / STATE_FILE

    def evaluationDir(self, which: str) -> Path:
        return self.folder / EVALUATION_FOLDER / which

    @property
    def validationCases(self) -> List[str]:
        return [c["name"] for c in self.cases if c["role"] == VALIDATION]

    @property
    def needsGrownBase(self) -> bool:
        return self.baseIsModel and bool(self.mapping.newClasses)

    def _training(self) -> Dict[str, Any]:
        """The "training" part of the card the engine writes into the output model (empty before the first)."""
        try:
            card = json.loads((self.modelDir / "model.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return card.get("training") or {}

    def trainingStatus(self) -> Optional[str]:
        """running, stopped, complete, early-stopped, or None before the first epoch ended."""
        return self._training().get("status")

    def history(self) -> List[Dict[str, Any]]:
        """The per-epoch records the engine saved so far (to redraw the curve of a resumed run)."""
        return list(self._training().get("history") or [])

    @property
    def resumable(self) -> bool:
        return not self.registeredPath and self.manifest.is_file()

    def save(self) -> None:
        data = {"output_name": self.outputName, "base_model": self.baseModel, "base_is_model": self.baseIsModel,
                "backbone": self.backbone, "base_options": self.baseOptions, "settings": self.settings.toDict(),
                "mapping": self.mapping.toDict(), "cases": self.cases, "device_kind": self.deviceKind,
                "estimated_s": self.estimatedSeconds, "registered_path": self.registeredPath}
        self.folder.mkdir(parents=True, exist_ok=True)
        writeJsonAtomic(self.folder / RUN_FILE, data)

    @classmethod
    def load(cls, folder: Path) -> "TrainingRun":
        folder = Path(folder)
        try:
            data = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{folder} is not a training run that can be resumed ({exc}).") from None
        return cls(folder, data["output_name"], baseModel=data["base_model"], baseIsModel=data["base_is_model"],
                   backbone=data["backbone"], baseOptions=list(data.get("base_options", [])),
                   settings=TrainingSettings.fromDict(data["settings"]),
                   mapping=SegmentMapping.fromDict(data["mapping"]), cases=data.get("cases", []),
                   deviceKind=data.get("device_kind", "cpu"),
                   estimatedSeconds=data.get("estimated_s", 0.0), registeredPath=data.get("registered_path", ""))


def listRuns(runsFolder: Path) -> List[TrainingRun]:
    """Every run in the folder, newest first."""
    folder = Path(runsFolder)
    if not folder.is_dir():
        return []
    found = [d for d in folder.iterdir() if (d / RUN_FILE).is_file()]
    runs = []
    for directory in sorted(found, key=lambda d: (d / RUN_FILE).stat().st_mtime, reverse=True):
        try:
            runs.append(TrainingRun.load(directory))
        except (ValueError, KeyError):
            continue  # a damaged run.json: not offered for resuming
    return runs
