"""The few settings the module offers, with defaults that are safe on a CPU, the tooltips that explain them,
and the ``hsam train`` options they become. Everything else keeps the engine's recipe (docs/training.md)."""
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, List


@dataclass
class TrainingSettings:
    epochs: int = 20
    sliceFraction: float = 0.5
    learningRate: float = 0.002
    loraRank: int = 4
    batchSize: int = 4
    device: str = "auto"
    freezeEncoder: bool = True
    validationSlices: int = 40  # per validation case, for picking the best epoch

    def engineOptions(self) -> List[str]:
        options = ["--epochs", str(self.epochs), "--slice-fraction", str(self.sliceFraction),
                   "--lr", str(self.learningRate), "--lora-rank", str(self.loraRank),
                   "--batch-size", str(self.batchSize), "--device", self.device or "auto",
                   "--val-slices", str(self.validationSlices)]
        return options + (["--freeze-encoder"] if self.freezeEncoder else [])

    def toDict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def fromDict(cls, data: Dict[str, Any]) -> "TrainingSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


TOOLTIPS = {
    "epochs": "Passes over the training slices. Few cases need many epochs; the best epoch by validation Dice "
              "is kept, so more epochs cost time but do not make the result worse.",
    "sliceFraction": "Share of each training case's slices used (slices that show an organ first). 1 uses "
                     "every labelled slice; 0.1 is the paper's few-shot protocol and 10 times faster per epoch.",
    "learningRate": "Base learning rate (AdamW, warm-up then decay). 0.001 for batch 8; short runs and "
                    "small batches train well with 0.002.",
    "loraRank": "Rank of the LoRA adapters in the image encoder of a new model (ignored with 'Freeze "
                "encoder', and a base model keeps its own).",
    "batchSize": "Slices per optimiser step. Larger batches need more memory (GPU: 8 fits in 8 GB with "
                 "LiteMedSAM).",
    "device": "Where training runs: auto (the GPU when there is one), cpu, or a GPU.",
    "freezeEncoder": "Train the decoders only, on image embeddings computed once: about 10 times faster per step "
                     "and the practical choice on a CPU. Unchecked, LoRA adapts the encoder too (GPU).",
}
