"""What an H-SAM model is made of: backbone, classes, LoRA rank, mode, and the ablation switches."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional

from .backbones import BACKBONES

MODES = ("paper", "release")


@dataclass
class HSAMConfig:
    """``mode="paper"`` follows the paper (SAM block order, working CMAttn, probability fusion);
    ``mode="release"`` reproduces the released code's behaviour so its checkpoint gives its numbers: H-SAM's block
    order, stage-2 input 2·(E + dense) in place of the inert CMAttn, logit averaging, training-time embedding noise.
    """

    backbone: str = "litemedsam"
    img_size: Optional[int] = None  # None: the backbone's usual input (512 SAM ViT, 256 LiteMedSAM)
    num_classes: int = 9  # including background
    lora_rank: int = 4  # 0: no LoRA
    lora_blocks: int = 0  # LoRA in only the encoder's last N attention blocks; 0: in every block
    mode: str = "paper"
    stage2: bool = True  # False: stage 1 only, i.e. the SAMed-style baseline
    cmattn: bool = True
    mask_attention: bool = True
    pixel_decoder: bool = True
    pixel_decoder_upsample: Optional[int] = None  # None: up to the input size
    decoder_mlp_dim: int = 2048

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone '{self.backbone}'; choose one of {', '.join(sorted(BACKBONES))}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.lora_blocks < 0:
            raise ValueError(f"lora_blocks must be 0 (every block) or a number of blocks, got {self.lora_blocks}")
        if self.num_classes < 2:
            raise ValueError("num_classes counts the background too and must be at least 2")
        if self.mode == "release" and self.cmattn:
            raise ValueError("release mode reproduces the released code, whose CMAttn is a no-op: set cmattn=False")
        if self.pixel_decoder_upsample is None:
            spec = BACKBONES[self.backbone]
            stride = 16 if spec.family == "sam_vit" else 4
            self.pixel_decoder_upsample = max(1, stride // 4)

    @property
    def block_order(self) -> str:
        return "hsam" if self.mode == "release" else "sam"

    @property
    def fusion(self) -> str:
        return "logits" if self.mode == "release" else "probabilities"

    @property
    def stage2_input_scale(self) -> float:
        return 2.0 if self.mode == "release" else 1.0

    @property
    def embedding_noise(self) -> float:
        return 0.2 if self.mode == "release" else 0.0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "HSAMConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model settings: {', '.join(sorted(unknown))}")
        return cls(**data)
