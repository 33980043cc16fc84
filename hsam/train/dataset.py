"""Training and validation slices: which axial slices of the loaded cases are used, and model-ready batches.

Slice picking (``pick_slices``), per case:

- ``slice_fraction`` of its slices (at least one), the paper's few-shot protocol at 0.1;
- foreground-aware: slices that show an organ are preferred, and background-only slices make up at most
  ``empty_fraction`` of the pick (a few keep the model from seeing organs everywhere);
- the foreground slices are drawn one per equal stretch of the case (stratified), so a small pick still covers
  every organ from top to bottom.

Every random choice comes from a generator seeded by (seed, what it is for), never from a shared stream, so a run
resumed mid-epoch, or split over several processes, sees exactly the same slices and augmentations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..io.slices import slices_to_batch
from .augment import AugmentSettings, augment_slice
from .case_loading import CaseVolume
from .slice_counts import picked_slice_counts

# Tags that keep the generators of different purposes apart.
_PICK, _EPOCH, _SAMPLE, _VIEW, _STEP_TORCH = 1, 2, 3, 4, 5


def generator(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


@dataclass
class SliceSet:
    """The picked slices of some cases, at their native in-plane size."""

    images: List[np.ndarray]  # (H, W) float32
    labels: List[np.ndarray]  # (H, W) uint8
    origins: List[Tuple[str, int]]  # (case name, slice index) of each

    def __len__(self) -> int:
        return len(self.images)

    def class_counts(self, num_classes: int) -> np.ndarray:
        counts = np.zeros(num_classes, dtype=np.int64)
        for label in self.labels:
            counts += np.bincount(label.ravel(), minlength=num_classes)[:num_classes]
        return counts


def pick_slices(volumes: Sequence[CaseVolume], fraction: float, empty_fraction: float, seed: int) -> SliceSet:
    images, labels, origins = [], [], []
    for c, volume in enumerate(volumes):
        rng = generator(seed, _PICK, c)
        depth = volume.label.shape[0]
        has_fg = volume.label.reshape(depth, -1).any(axis=1)
        fg, bg = np.flatnonzero(has_fg), np.flatnonzero(~has_fg)
        n_fg, n_bg = picked_slice_counts(depth, len(fg), fraction, empty_fraction)
        picked = [int(rng.choice(stretch)) for stretch in np.array_split(fg, n_fg)] if n_fg else []
        picked += rng.choice(bg, size=n_bg, replace=False).tolist() if n_bg else []
        for z in sorted(picked):
            images.append(volume.image[z])
            labels.append(volume.label[z])
            origins.append((volume.name, int(z)))
    return SliceSet(images, labels, origins)


def validation_slices(volumes: Sequence[CaseVolume], per_case: int) -> List[SliceSet]:
    """Evenly spaced slices of each validation case (all of them when the case has fewer)."""
    sets = []
    for volume in volumes:
        depth = volume.label.shape[0]
        index = np.unique(np.linspace(0, depth - 1, min(per_case, depth)).round().astype(int))
        sets.append(SliceSet([volume.image[z] for z in index], [volume.label[z] for z in index],
                             [(volume.name, int(z)) for z in index]))
    return sets


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return generator(seed, _EPOCH, epoch).permutation(n)


def sample_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one slice's augmentation (or cached view) in one epoch."""
    return generator(seed, _SAMPLE, epoch, index)


def view_generator(seed: int, index: int, view: int) -> np.random.Generator:
    """The generator of a cached augmented view (``--freeze-encoder``)."""
    return generator(seed, _VIEW, index, view)


def step_torch_seed(seed: int, step: int, rank: int) -> int:
    """The seed of torch's own generator (dropout, CMAttn noise) for one optimiser step of one process."""
    return int(np.random.SeedSequence([seed, _STEP_TORCH, step, rank]).generate_state(1)[0])


def to_batch(images: Sequence[np.ndarray], labels: Sequence[np.ndarray], size: int
             ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Slices -> (B, 3, S, S) images (the inference path's ``slices_to_batch``) and (B, S, S) long labels
    (nearest)."""
    shapes = {im.shape for im in images}
    if len(shapes) == 1:
        x = slices_to_batch(np.stack(images), size)
    else:
        x = torch.cat([slices_to_batch(im[None], size) for im in images])
    y = torch.from_numpy(np.stack([resize_labels(lab, size) for lab in labels])).long()
    return x, y


def resize_labels(label: np.ndarray, size: int) -> np.ndarray:
    if label.shape == (size, size):
        return label
    t = torch.from_numpy(label.astype(np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="nearest-exact")[0, 0].numpy().astype(label.dtype)


def augmented_batch(slices: SliceSet, indices: Sequence[int], size: int, seed: int, epoch: int,
                    augment: Optional[AugmentSettings] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for i in indices:
        image, label = slices.images[i], slices.labels[i]
        if augment is not None:
            image, label = augment_slice(image, label, sample_generator(seed, epoch, int(i)), augment)
        images.append(image)
        labels.append(label)
    return to_batch(images, labels, size)
