"""What a training run has done so far, from the engine's JSON events (hsam/train/events.py): the curve per
epoch (training loss, validation Dice), where the run is (epoch, step, ETA), the last checkpoint and the end."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .estimate import formatDuration


@dataclass
class EpochResult:
    epoch: int
    loss: float
    validationDice: Optional[float]  # mean over the organs; None without validation
    organDice: Dict[str, float] = field(default_factory=dict)


class TrainingProgress:
    def __init__(self) -> None:
        self.epochs: List[EpochResult] = []
        self.totalEpochs = 0
        self.epoch = 0
        self.step = 0
        self.totalSteps = 0
        self.etaSeconds: Optional[float] = None
        self.lastLoss: Optional[float] = None
        self.checkpoint = ""
        self.bestEpoch: Optional[int] = None
        self.finished: Optional[Dict[str, Any]] = None  # the "done" event
        self.stopped = False

    def handle(self, event: Dict[str, Any]) -> bool:
        """Take one event; True when it changed the per-epoch curve."""
        kind = event.get("event")
        if kind == "step":
            self.epoch, self.step = int(event["epoch"]), int(event["step"])
            self.totalSteps = int(event.get("steps") or self.totalSteps)
            self.lastLoss = event.get("loss")
            self.etaSeconds = event.get("eta_s")
        elif kind == "epoch":
            self.totalEpochs = int(event.get("epochs") or self.totalEpochs)
            self.etaSeconds = event.get("eta_s")
            self.bestEpoch = event.get("best", self.bestEpoch)
            self.addEpoch(event)
            return True
        elif kind == "checkpoint":
            self.checkpoint = event.get("path", "")
        elif kind == "done":
            self.finished = event
            self.bestEpoch = event.get("best_epoch", self.bestEpoch)
            self.etaSeconds = 0.0
        elif kind == "stopped":
            self.stopped = True
            self.checkpoint = event.get("checkpoint", self.checkpoint)
        return False

    def addEpoch(self, record: Dict[str, Any]) -> None:
        """An epoch event, or an epoch of the history a stopped run saved (its curve so far)."""
        result = EpochResult(int(record["epoch"]), float(record["loss"]), record.get("val_dice_mean"),
                             dict(record.get("val_dice") or {}))
        self.epochs = [e for e in self.epochs if e.epoch != result.epoch] + [result]
        self.epoch = max(self.epoch, result.epoch)

    def columns(self) -> Dict[str, List[float]]:
        """The curve as plot columns; a missing validation Dice is NaN (drawn as a gap)."""
        return {"epoch": [float(e.epoch) for e in self.epochs],
                "training loss": [e.loss for e in self.epochs],
                "validation Dice": [float("nan") if e.validationDice is None else e.validationDice
                                    for e in self.epochs]}

    def statusText(self) -> str:
        if self.finished is not None:
            dice = self.finished.get("val_dice_mean")
            return f"Finished: best epoch {self.bestEpoch}" + (f", validation Dice {dice:.3f}" if dice is not None
                                                                else "")
        parts = []
        if self.totalEpochs or self.epoch:
            parts.append(f"epoch {self.epoch}" + (f"/{self.totalEpochs}" if self.totalEpochs else ""))
        if self.totalSteps:
            parts.append(f"step {self.step}/{self.totalSteps}")
        if self.lastLoss is not None:
            parts.append(f"loss {self.lastLoss:.4f}")
        if self.etaSeconds is not None:
            parts.append(f"about {formatDuration(self.etaSeconds)} left")
        return ", ".join(parts)
