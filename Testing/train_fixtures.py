"""Helpers for the hsam train tests: a few real BTCV cases, tiny settings, small synthetic volumes."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
import SimpleITK as sitk

from hsam.train import TrainSettings

REPO = Path(__file__).resolve().parents[1]
BTCV_LABEL_MAP = REPO / "docs" / "examples" / "btcv_synapse_labels.json"


def btcv_pairs(data_dir: Path, names=("case0005", "case0006", "case0007")) -> List[Tuple[str, str]]:
    folder = Path(data_dir) / "btcv_synapse" / "256"
    return [(str(folder / f"{n}_ct.nii.gz"), str(folder / f"{n}_label.nii.gz")) for n in names]


def tiny_settings(out: Path, cases: List[Tuple[str, str]], **overrides) -> TrainSettings:
    """A tiny random LiteMedSAM-shaped model (64 px input, small decoder MLPs) on ~3 slices per case."""
    values = dict(out=str(out), base="litemedsam_tiny", cases=list(cases), label_map=str(BTCV_LABEL_MAP),
                  lora_rank=2, decoder_mlp_dim=64, slice_fraction=0.025, epochs=2, batch_size=2, val_slices=2,
                  progress="none", seed=7)
    values.update(overrides)
    return TrainSettings(**values)


def write_volume(path: Path, array: np.ndarray, spacing=(1.5, 1.5, 3.0), origin=(0.0, 0.0, 0.0)) -> str:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    sitk.WriteImage(image, str(path))
    return str(path)


def synthetic_case(folder: Path, name: str, foreground: bool = True, shape=(6, 32, 32)) -> Tuple[str, str]:
    """A small CT-like volume and a label with a liver-valued (5) block."""
    rng = np.random.default_rng(len(name))
    ct = rng.integers(-200, 300, size=shape).astype(np.int16)
    label = np.zeros(shape, dtype=np.uint8)
    if foreground:
        label[:, 8:20, 4:14] = 5
    folder.mkdir(parents=True, exist_ok=True)
    return (write_volume(folder / f"{name}_ct.nii.gz", ct), write_volume(folder / f"{name}_label.nii.gz", label))
