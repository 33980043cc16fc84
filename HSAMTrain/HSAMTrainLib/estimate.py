"""An estimate of how long a fine-tuning run takes here, from the settings and the cases (how many slices are
encoded, trained on and validated) and a cost per slice.

The costs per slice were measured with the LiteMedSAM backbone (256 px) on 2 CPU cores and scaled for other
backbones and devices. After each uninterrupted run the module records how long it really took against the
estimate (``timing.json`` in the runs folder), and later estimates on the same kind of device use that factor:
the estimate learns this machine's speed."""
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional

from HSAMSharedLib.engine import loadEngineFile

from .case_list import TRAIN, VALIDATION, TrainingCase
from .training_settings import TrainingSettings

# Seconds per slice, LiteMedSAM, 2 CPU cores.
ENCODE_S = 1.5  # image encoder forward: embedding cache, inference
DECODE_S = 0.2  # decoders forward (validation on cached embeddings)
TRAIN_FROZEN_S = 0.6  # decoders forward + backward (--freeze-encoder)
TRAIN_LORA_S = 5.0  # encoder with LoRA and decoders, forward + backward
# Per LoRA block of --lora-blocks N, forward + backward (a forward alone: a third): the left-atrium recipe's epoch of
# 256 slices, 2 blocks, took 4.3-5 min in float32 on 2 cores (benchmarks/la_mri).
LORA_BLOCK_S = 0.2
INFER_S = ENCODE_S + DECODE_S

DEVICE_SPEEDUP = {"cpu": 1.0, "mps": 5.0, "cuda": 40.0}
BACKBONE_COST = {"litemedsam": 1.0, "sam_vit_b": 15.0, "sam_vit_l": 40.0, "sam_vit_h": 70.0}
TIMING_FILE = "timing.json"


@dataclass
class Estimate:
    seconds: float
    trainingSlices: int
    steps: int
    validationSlices: int

    def describe(self) -> str:
        return (f"about {formatDuration(self.seconds)} (estimate): {self.steps} steps on {self.trainingSlices} "
                f"training slices, {self.validationSlices} validation slices per epoch")


def engineDefault(setting: str):
    """The default of a ``hsam train`` setting the module leaves unchanged, from the engine's option table."""
    options = loadEngineFile("train/options.py").TrainOptions
    return next(field.default for field in dataclasses.fields(options) if field.name == setting)


def pickedSlices(slices: int, labelledSlices: int, fraction: float) -> int:
    """How many slices the engine picks from a training case, by the engine's own rule."""
    rule = loadEngineFile("train/slice_counts.py").picked_slice_counts
    foreground, background = rule(slices, labelledSlices, fraction, engineDefault("empty_slice_fraction"))
    return foreground + background


def estimateRun(cases: Iterable[TrainingCase], settings: TrainingSettings, backbone: str = "litemedsam",
                deviceKind: str = "cpu", evaluateBase: bool = True, machineFactor: float = 1.0) -> Estimate:
    cases = list(cases)
    run = settings.engineValues()  # with the recipe's values where it decides them
    train = sum(pickedSlices(c.summary.slices, c.summary.labelledSlices, run["slice_fraction"])
                for c in cases if c.role == TRAIN)
    validation = sum(min(run["val_slices"], c.summary.slices) for c in cases if c.role == VALIDATION)
    evaluated = sum(c.summary.slices for c in cases if c.role == VALIDATION) * (2 if evaluateBase else 1)
    epochs, batch = run["epochs"], max(1, run["batch_size"])
    steps = epochs * (train // batch)
    trained = steps * batch
    cached = (train * run["cached_views"] + validation) * ENCODE_S  # what is computed once
    if run["freeze_encoder"]:
        seconds = cached + trained * TRAIN_FROZEN_S + epochs * validation * DECODE_S
    elif run["lora_blocks"]:  # the last blocks run on every step, on the cached input of the first ones
        blocks = run["lora_blocks"]
        seconds = cached + trained * (TRAIN_FROZEN_S + blocks * LORA_BLOCK_S) + \
            epochs * validation * (DECODE_S + blocks * LORA_BLOCK_S / 3)
    else:
        seconds = trained * TRAIN_LORA_S + epochs * validation * INFER_S
    seconds += evaluated * INFER_S
    scale = BACKBONE_COST.get(backbone, 1.0) / DEVICE_SPEEDUP.get(deviceKind, 1.0) * machineFactor
    return Estimate(seconds * scale, train, steps, validation)


def deviceKind(device: str, gpuAvailable: bool) -> str:
    if device == "auto":
        return "cuda" if gpuAvailable else "cpu"
    return "cuda" if device.startswith("cuda") else device


def readMachineFactors(runsFolder: Path) -> Dict[str, float]:
    try:
        return dict(json.loads((Path(runsFolder) / TIMING_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def recordRunTime(runsFolder: Path, kind: str, estimated: float, measured: float,
                  previousFactor: Optional[float] = None) -> float:
    """Remember how much slower (> 1) or faster this machine was than the estimate made without a factor."""
    factors = readMachineFactors(runsFolder)
    factor = measured / max(estimated, 1e-6)
    if previousFactor:  # smooth: one unusually busy run should not halve the next estimate
        factor = (factor + previousFactor) / 2
    factors[kind] = round(factor, 3)
    Path(runsFolder).mkdir(parents=True, exist_ok=True)
    (Path(runsFolder) / TIMING_FILE).write_text(json.dumps(factors, indent=2), encoding="utf-8")
    return factors[kind]


def formatDuration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
