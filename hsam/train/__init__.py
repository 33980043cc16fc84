"""Few-shot fine-tuning: cases and label maps, slice sampling, augmentation, losses, schedules, the training loop,
checkpoints and resume, DDP."""
from .errors import TrainingError, TrainingStopped
from .settings import TrainSettings

__all__ = ["TrainingError", "TrainingStopped", "TrainSettings", "train"]


def train(settings: TrainSettings, **kwargs):
    """Run a training job (see ``hsam.train.trainer.train``); imported lazily to keep ``import hsam.train`` light."""
    from .trainer import train as _train

    return _train(settings, **kwargs)
