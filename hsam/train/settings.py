"""Every setting of a training job, with the recipe defaults and the checks (the options are declared in
``options.py``; docs/training.md explains each choice)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

from .options import RESULT_SETTINGS, TrainOptions, problems


@dataclass
class TrainSettings(TrainOptions):
    def validate(self) -> None:
        from .errors import TrainingError

        checks = [
            (not (self.no_validation and self.early_stop), "--early-stop needs validation"),
            (self.embedding_store is None or self.freeze_encoder or self.lora_blocks,
             "--embedding-store needs --freeze-encoder or --lora-blocks (with LoRA in every block the encoder "
             "changes as it trains)"),
            (not (self.freeze_encoder and self.lora_blocks),
             "--lora-blocks adapts the encoder, --freeze-encoder keeps it as it is: give one of them"),
        ]
        found = problems(self) + [message for ok, message in checks if not ok]
        if found:
            raise TrainingError(found[0])

    def result_settings(self) -> Dict[str, Any]:
        """The settings a resumed run must repeat."""
        return {name: getattr(self, name) for name in RESULT_SETTINGS}
