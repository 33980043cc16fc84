"""Conversion of the authors' released files (SAM base checkpoint + H-SAM ``.pth``) to our model format.

The released checkpoint stores LoRA as ``w_a_{2i}``/``w_b_{2i}`` (q of block i) and ``w_a_{2i+1}``/``w_b_{2i+1}``
(v of block i), the rank being the file's, plus every ``prompt_encoder*``/``mask_decoder*`` tensor of their model.
The result runs in release mode (H-SAM's block order, stage-2 input 2·(E + dense), logit averaging); tensors that
never influence the released model's output are skipped on purpose and listed in ``DEAD_PREFIXES``.
"""
from __future__ import annotations

import re
from typing import Dict, Tuple

import torch

from ..weights import CheckpointError, PathLike

# Never affect the output of the released model: duplicate prompt encoder, unused prompt parts, IoU heads, the
# CMAttn branch (a softmax over one channel makes it exactly x2) and Attention2's unused LayerNorms.
DEAD_PREFIXES = (
    "prompt_encoder2.", "prompt_encoder.point_embeddings.", "prompt_encoder.not_a_point_embed.",
    "prompt_encoder.mask_downscaling.", "mask_decoder.iou_prediction_head.", "mask_decoder2.iou_prediction_head.",
    "mask_decoder2.self_attn.", "mask_decoder2.self_attn2.", "mask_decoder2.norm1.", "mask_decoder2.norm2.",
    "mask_decoder2.mlp.", "mask_decoder2.med_sel.",
)
_DEAD_PATTERN = re.compile(r"^mask_decoder2\.transformer2\.layers\.\d+\.cross_attn_\w+\.norm[123]\.")

_RENAMES = (
    ("prompt_encoder.no_mask_embed.", "prompt.no_mask_embed."),
    ("prompt_encoder.pe_layer.", "prompt.pe_layer."),
    ("mask_decoder.", "stage1."),
    ("mask_decoder2.transformer2.", "stage2.transformer."),
    ("mask_decoder2.mask_tokens.", "stage2.mask_tokens."),
    ("mask_decoder2.output_upscaling.", "stage2.output_upscaling."),
    ("mask_decoder2.skip_connect.", "stage2.pixel_decoder.layers."),
    ("mask_decoder2.output_hypernetworks_mlps2.", "stage2.output_hypernetworks_mlps."),
)

DEPTH_TO_BACKBONE = {12: "sam_vit_b", 24: "sam_vit_l", 32: "sam_vit_h"}


def inspect_release(state: Dict[str, torch.Tensor], source: PathLike) -> Tuple[str, int, int]:
    """(backbone name, LoRA rank, number of classes incl. background) read from a released checkpoint."""
    lora_a = sorted(k for k in state if re.fullmatch(r"w_a_\d{3}", k))
    if not lora_a or "mask_decoder.mask_tokens.weight" not in state:
        raise CheckpointError(f"{source}: not an H-SAM/SAMed release checkpoint (no w_a_* LoRA or "
                              "mask_decoder.mask_tokens)")
    depth = len(lora_a) // 2
    if depth not in DEPTH_TO_BACKBONE:
        raise CheckpointError(f"{source}: {len(lora_a)} LoRA matrices fit no SAM ViT (ViT-B 24, ViT-L 48, ViT-H 64)")
    rank = state["w_a_000"].shape[0]
    return DEPTH_TO_BACKBONE[depth], rank, state["mask_decoder.mask_tokens.weight"].shape[0]


def map_release_state(state: Dict[str, torch.Tensor], source: PathLike) -> Dict[str, torch.Tensor]:
    """Released key names -> ours; raises on anything it does not know, so no tensor is silently dropped."""
    out = {}
    for key, value in state.items():
        match = re.fullmatch(r"w_([ab])_(\d{3})", key)
        if match:
            block, which = divmod(int(match.group(2)), 2)
            part = f"{match.group(1)}_{'v' if which else 'q'}"
            out[f"backbone.encoder.blocks.{block}.attn.qkv.{part}.weight"] = value
            continue
        if key.startswith(DEAD_PREFIXES) or _DEAD_PATTERN.match(key):
            continue
        for src, dst in _RENAMES:
            if key.startswith(src):
                out[dst + key[len(src):]] = value
                break
        else:
            raise CheckpointError(f"{source}: unexpected tensor '{key}' for an H-SAM release checkpoint")
    return out
