"""Every setting of a training job, with the recipe defaults (docs/training.md explains each choice)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..models.card import MODALITIES
from .bounds import NUMERIC_BOUNDS, option_name
from .schedule import STAGE_WEIGHTS, STAGE_WEIGHTS_OVER

# Settings that change the numbers a run produces: a resumed run must use the same ones.
RESULT_SETTINGS = (
    "base", "modality", "checkpoint", "lora_rank", "mode", "label_map", "val_cases", "slice_fraction", "empty_slice_fraction",
    "epochs", "batch_size", "accumulate", "lr", "weight_decay", "warmup_steps", "dice_weight", "stage_weights",
    "stage_weights_over", "freeze_encoder", "cached_views", "augment", "intensity_jitter", "organ_jitter",
    "val_slices", "seed",
    "decoder_mlp_dim", "stage2", "cmattn", "mask_attention", "pixel_decoder", "precision", "ema",
)


@dataclass
class TrainSettings:
    out: str
    base: str = "litemedsam"  # a model directory / installed id, or a backbone name for a new model
    cases: List[Tuple[str, str]] = field(default_factory=list)  # (image, label) pairs given directly
    manifest: Optional[str] = None  # JSON or CSV: image, label[, split]
    label_map: Optional[str] = None  # JSON: file label values / segment names -> model classes
    checkpoint: Optional[str] = None  # base weights file for SAM ViT backbones
    model_id: Optional[str] = None
    modality: Optional[str] = None  # "ct" or "mr": the intensity normalization; None: the base's (CT for a new model)
    # New models only (a model directory as base keeps its own architecture).
    lora_rank: int = 4
    mode: str = "paper"
    decoder_mlp_dim: int = 2048
    # The paper's components (Table 4 ablation); all on by default. stage2=False is the SAMed-style stage 1 only.
    stage2: bool = True
    cmattn: bool = True  # paper mode only: the released code's CMAttn is a no-op
    mask_attention: bool = True
    pixel_decoder: bool = True
    # Data.
    val_cases: Optional[int] = None  # cases held out when the manifest names no split; None: 20%, at least 1
    slice_fraction: float = 1.0  # the paper's few-shot protocol uses 0.1
    empty_slice_fraction: float = 0.1  # at most this share of the picked slices may be background only
    val_slices: int = 40  # per validation case, evenly spaced over the case
    augment: bool = True
    intensity_jitter: bool = False
    organ_jitter: float = 0.0  # largest random shift of each organ's intensity (normalised units); 0: off
    # Optimisation (AdamW and the released schedule; method notes §10).
    epochs: int = 100
    batch_size: int = 8
    accumulate: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: Optional[int] = None  # None: 6% of all steps (the released 250 of 4,200)
    dice_weight: float = 0.9  # per stage: (1 - d) CE + d Dice
    stage_weights: str = "paper"  # "paper": λw = 0.8·exp(-0.005·epoch); "release": 1 - 0.6^(0.99^epoch)
    stage_weights_over: str = "run"  # "run": the 300-epoch curve spread over this run; "epochs": at the epoch index
    early_stop: Optional[int] = None  # stop after this many epochs without a better validation Dice
    ema: float = 0.98  # validate and save a moving average of the weights with this decay per step; 0: off
    # Encoder.
    freeze_encoder: bool = False  # no LoRA; image embeddings computed once and cached
    cached_views: int = 3  # with --freeze-encoder: the slice itself plus this many minus one augmented copies
    embedding_store: Optional[str] = None  # with --freeze-encoder: a folder that keeps embeddings across runs
    # Run.
    seed: int = 2345
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 (else fp16) autocast on CUDA, fp32 elsewhere; bf16 on a CPU is opt-in
    progress: str = "tqdm"  # "tqdm", "jsonl" or "none"
    resume: bool = False
    no_validation: bool = False  # keep the last epoch instead of the best validated one

    def validate(self) -> None:
        from .errors import TrainingError

        for name, bounds in NUMERIC_BOUNDS.items():
            value = getattr(self, name)
            problem = None if value is None else bounds.problem(value)
            if problem:
                raise TrainingError(f"{option_name(name)} {problem}")
        checks = [
            (self.stage_weights in STAGE_WEIGHTS, "--stage-weights must be 'paper' or 'release'"),
            (self.stage_weights_over in STAGE_WEIGHTS_OVER, "--stage-weights-over must be 'run' or 'epochs'"),
            (self.modality in (None,) + MODALITIES, f"--modality must be one of {', '.join(MODALITIES)}"),
            (self.progress in ("tqdm", "jsonl", "none"), "--progress must be tqdm, jsonl or none"),
            (not (self.no_validation and self.early_stop), "--early-stop needs validation"),
            (self.precision in ("auto", "fp32", "bf16", "fp16"), "--precision must be auto, fp32, bf16 or fp16"),
            (self.embedding_store is None or self.freeze_encoder,
             "--embedding-store needs --freeze-encoder (with LoRA the encoder changes as it trains)"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)

    def result_settings(self) -> Dict[str, Any]:
        data = asdict(self)
        return {k: data[k] for k in RESULT_SETTINGS}
