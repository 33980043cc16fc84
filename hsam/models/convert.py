"""``hsam convert-official``: the authors' SAM + H-SAM files -> a model directory in release mode."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..network.build import build_hsam
from ..network.config import HSAMConfig
from ..weights import CheckpointError, describe_mismatch, load_torch_state, sha256_of
from .labels import BTCV_8_ORGANS
from .model_dir import make_card, save_model, trainable_state
from .official import inspect_release, map_release_state

SAM_URLS = {
    "sam_vit_b": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    "sam_vit_l": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    "sam_vit_h": "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
}


def convert_official(sam_checkpoint: Union[str, Path], hsam_checkpoint: Union[str, Path], out_dir: Union[str, Path],
                     model_id: Optional[str] = None) -> Path:
    release = load_torch_state(hsam_checkpoint)
    backbone, rank, num_classes = inspect_release(release, hsam_checkpoint)
    config = HSAMConfig(backbone=backbone, num_classes=num_classes, lora_rank=rank, mode="release", cmattn=False)
    try:
        model = build_hsam(config, "pretrained", checkpoint=sam_checkpoint)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (the H-SAM file {Path(hsam_checkpoint).name} was trained on {backbone})") \
            from None
    state = map_release_state(release, hsam_checkpoint)
    problem = describe_mismatch(trainable_state(model), state)
    if problem:
        raise CheckpointError(f"{hsam_checkpoint}: does not fit a {backbone} H-SAM with rank {rank}: {problem}")
    model.load_state_dict(state, strict=False)
    labels = BTCV_8_ORGANS if num_classes == len(BTCV_8_ORGANS) + 1 else None
    sam_path = Path(sam_checkpoint).resolve()
    weights = {"source": "file", "filename": sam_path.name, "sha256": sha256_of(sam_path), "path": str(sam_path),
               "url": SAM_URLS.get(backbone)}
    card = make_card(model, model_id or f"hsam-release-{Path(hsam_checkpoint).stem}", weights, labels,
                     title="H-SAM released checkpoint (converted)",
                     description=f"Converted from {Path(hsam_checkpoint).name}; runs the released code's behaviour.",
                     source={"hsam_checkpoint": Path(hsam_checkpoint).name,
                             "sha256": sha256_of(hsam_checkpoint)},
                     license="MIT (H-SAM release) / Apache-2.0 (SAM)")
    return save_model(model, out_dir, card)
