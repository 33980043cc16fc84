"""The events of a training run (its progress, through ``hsam.progress``): a tqdm bar for people, or JSON lines for
the Slicer module and scripts.

``--progress jsonl`` writes one JSON object per line to stdout:

- ``{"event": "log", "message": ...}``: what the run is doing (loading, caching embeddings, warnings);
- ``{"event": "step", "epoch", "step", "steps", "loss", "lr", "eta_s"}``: after every optimiser step;
- ``{"event": "epoch", "epoch", "epochs", "loss", "lr", "stage1_weight", "val_dice": {organ: Dice},
  "val_dice_mean", "best", "wall_s", "eta_s"}``: after every epoch;
- ``{"event": "checkpoint", "path", "epoch", "step"}``: the training state was saved;
- ``{"event": "done", "model", "status", "best_epoch", "val_dice", "val_dice_mean", "epochs_done", "wall_s"}``,
  ``{"event": "stopped", "checkpoint", "step"}`` after a stop request (SIGINT, SIGTERM or the stop file), or
  ``{"event": "error", "message"}``. Every line is strict JSON (docs/command-line.md).
"""
from __future__ import annotations

from typing import Any, Optional

from ..progress import ConsoleReporter, JsonLinesReporter, Reporter

# Events people read as the log lines and the summary the command prints instead.
_MACHINE_ONLY = ("epoch", "checkpoint", "done", "stopped", "error")


class Progress:
    def __init__(self, mode: str, enabled: bool = True) -> None:
        self.reporter: Optional[Reporter] = None
        if enabled and mode == "jsonl":
            self.reporter = JsonLinesReporter()
        elif enabled and mode == "tqdm":
            self.reporter = ConsoleReporter()
        self.jsonl = isinstance(self.reporter, JsonLinesReporter)

    def event(self, name: str, **fields: Any) -> None:
        if self.reporter is not None and (self.jsonl or name not in _MACHINE_ONLY):
            self.reporter.event(name, **fields)

    def log(self, message: str) -> None:
        if self.reporter is not None:
            self.reporter.log(message)

    def step(self, **fields: Any) -> None:
        if self.jsonl:
            self.reporter.event("step", **fields)
        elif self.reporter is not None:
            self.reporter.progress(fields["step"], fields["steps"], stage="training")

    def close(self) -> None:
        if self.reporter is not None:
            self.reporter.close()
