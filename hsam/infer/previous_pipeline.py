"""``hsam segment``'s CPU pipeline as it was before its speed-ups (commit 6882279), kept as the reference the
end-to-end benchmark and the bf16 validation measure the default against. Not used by ``hsam segment``.

Its choices: float32 without autocast on a CPU; the model as loaded (batch norms apart, TinyViT window attention
through ``scaled_dot_product_attention`` with its bias gathered per call); one slice per pass in the default
NCHW layout, softmax, resize and argmax over the class dimension; the input volume held until the end; the
largest component of each organ labelled over the whole volume; the labels transposed into a new (i, j, k) array
for slicerio, gzip level 9.

    python -m hsam.infer.previous_pipeline INPUT OUTPUT.seg.nrrd [--model ID]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from ..io.normalize import intensity_range, scale_to_unit
from ..io.orientation import from_canonical, to_canonical
from ..io.slices import slices_to_batch
from ..io.volume import VolumeError, read_image
from ..network.fused_attention import use_fused_attention
from .output import _write, segmentation_dict
from .plausibility import warn_if_implausible


def predict_labels(model, volume: np.ndarray) -> np.ndarray:
    """(k, j, i) raw intensities in canonical orientation -> uint8 labels, one float32 slice per pass."""
    value_range = intensity_range(volume, model.card["normalization"])
    labels = np.zeros(volume.shape, dtype=np.uint8)
    for k in range(volume.shape[0]):
        chunk = np.asarray(volume[k:k + 1], dtype=np.float32)
        batch = slices_to_batch(scale_to_unit(chunk, *value_range), model.img_size)
        with torch.inference_mode():
            fused = model.predict_logits(batch)["fused"]
        probs = torch.softmax(fused.float(), dim=1)
        if probs.shape[-2:] != chunk.shape[-2:]:
            probs = F.interpolate(probs, size=chunk.shape[-2:], mode="bilinear", align_corners=False)
        labels[k:k + 1] = probs.argmax(1).to(torch.uint8).cpu().numpy()
    return labels


def keep_largest_components(labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    out = labels.copy()
    for value in classes:
        mask = labels == value
        if not mask.any():
            continue
        components = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True)
        ranked = sitk.GetArrayFromImage(sitk.RelabelComponent(components, sortByObjectSize=True))
        out[mask & (ranked != 1)] = 0
    return out


def segment_image(model, image: sitk.Image, source: str = "volume") -> sitk.Image:
    """The label image on ``image``'s grid (post-processed, all organs), computed as before."""
    card = model.card
    canonical, code = to_canonical(image, card.get("canonical_orientation", "LPS"))
    volume = sitk.GetArrayViewFromImage(canonical)
    if np.issubdtype(volume.dtype, np.floating) and np.isnan(volume).any():
        raise VolumeError(f"{source}: contains NaN voxels")
    warn_if_implausible(image, card, source, None)
    labels = keep_largest_components(predict_labels(model, volume), [s["value"] for s in card["labels"]])
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(canonical)
    return from_canonical(label_image, image, code)


def load(model_id: str):
    from ..models import load_model

    model = load_model(model_id, device=torch.device("cpu")).eval()
    use_fused_attention(model.backbone.encoder)
    return model


def write_segmentation(labels: sitk.Image, path: Union[str, Path], label_specs: List[Dict]) -> Path:
    import slicerio

    seg = segmentation_dict(labels, label_specs)
    seg["voxels"] = np.ascontiguousarray(seg["voxels"])  # (i, j, k) C order, then written in Fortran order
    return _write(path, lambda tmp: slicerio.write_segmentation(tmp, seg))


def main(argv: Optional[List[str]] = None) -> int:
    from ..allocator import keep_freed_memory
    from ..commands.segment import DEFAULT_MODEL_ID

    parser = argparse.ArgumentParser(prog="python -m hsam.infer.previous_pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("input")
    parser.add_argument("output", help="a .seg.nrrd file")
    parser.add_argument("--model", default=DEFAULT_MODEL_ID)
    args = parser.parse_args(argv)
    keep_freed_memory()  # as the hsam commands did
    model = load(args.model)
    labels = segment_image(model, read_image(args.input), args.input)
    write_segmentation(labels, args.output, model.card["labels"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
