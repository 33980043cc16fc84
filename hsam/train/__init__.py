"""Few-shot fine-tuning: cases (``case_manifest.py``, ``case_loading.py``), slice sampling and augmentation,
losses, schedules, the training loop (``trainer.py``), its events, checkpoints and resume, the output folder, DDP.
Label maps are ``hsam.models.label_map``."""
from .errors import TrainingError, TrainingStopped
from .settings import TrainSettings

__all__ = ["TrainingError", "TrainingStopped", "TrainSettings", "train"]


def train(settings: TrainSettings, **kwargs):
    """Run a training job (see ``hsam.train.trainer.train``); imported lazily to keep ``import hsam.train`` light."""
    from .trainer import train as _train

    return _train(settings, **kwargs)
