"""The default model beyond the BTCV training scans: other voxel sizes and fields, with `hsam` as a user runs it.

    python benchmarks/default_model/beyond_btcv.py --out /tmp/beyond [--model ID|DIR] [--parts agreement sizes]

- ``agreement``: TotalSegmentator's test CTs (3 mm voxels, a 366 x 303 mm field, low enhancement; a 512 x 512
  DICOM series) segmented with ``hsam segment``, then scored by ``hsam evaluate`` against TotalSegmentator's labels
  and organ volumes in mL. Those labels are TotalSegmentator's own predictions: the Dice is agreement with it, not
  accuracy.
- ``sizes``: BTCV case0026 and case0027 (held out from the default model) resampled in-plane to other pixel
  counts over the same field (64 to 512 pixels across: 8 to 1 mm at their 512 mm nominal field), segmented, and
  scored against their manual labels resampled (nearest) to the same grid.

Writes ``OUT/<part>/eval/<case>/metrics.csv`` (hsam evaluate) and prints one table per part.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import SimpleITK as sitk

from hsam.models.labels import BTCV_8_ORGANS

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DATA = (REPO.parent / "shared" / "data").resolve()
TS = DATA / "totalsegmentator_tests"
BTCV = DATA / "btcv_synapse" / "256"
BTCV_LABEL_MAP = REPO / "docs" / "examples" / "btcv_synapse_labels.json"
# TotalSegmentator v2 "total" ids of the default model's organs; every other id is background here.
TS_ORGANS = {1: "spleen", 2: "right kidney", 3: "left kidney", 4: "gallbladder", 5: "liver", 6: "stomach",
             7: "pancreas", 52: "aorta"}
TS_PAIRS = [("example_ct_sm", TS / "example_ct_sm.nii.gz", TS / "example_seg.nii.gz"),
            ("example_ct", TS / "example_ct.nii.gz", TS / "example_seg_fast_force_split.nii.gz"),
            ("example_ct_dicom", TS / "example_ct_dicom", TS / "example_seg_dicom.nii.gz")]
SIZES = [64, 128, 256, 512]
MODEL_ORGANS = {s["value"]: s["name"] for s in BTCV_8_ORGANS}


def segment(image: Path, output: Path, model: str) -> None:
    if not output.is_file():  # kept from an earlier run with the same --out
        hsam("segment", str(image), "-o", str(output), "--model", model)


def hsam(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "hsam", *args, "--progress", "jsonl"], check=True,
                   stdout=subprocess.DEVNULL)


def volumes_ml(path: Path, values: Dict[int, str]) -> Dict[str, float]:
    image = sitk.ReadImage(str(path))
    counts = np.bincount(sitk.GetArrayViewFromImage(image).ravel(), minlength=256)
    return {name: counts[value] * float(np.prod(image.GetSpacing())) / 1000 for value, name in values.items()}


def scores(metrics_csv: Path) -> Dict[str, Dict[str, float]]:
    """{case: {organ: Dice}} from hsam evaluate's metrics.csv."""
    out: Dict[str, Dict[str, float]] = {}
    for line in metrics_csv.read_text().splitlines()[1:]:
        case, organ, dice = line.split(",")[:3]
        out.setdefault(case, {})[organ] = float(dice)
    return out


def evaluate(predictions: List[Path], labels: List[Path], label_map: Path) -> Dict[str, Dict[str, float]]:
    """{case: {organ: Dice}}, one ``hsam evaluate`` per prediction (it takes one file or folder)."""
    dice = {}
    for prediction, label in zip(predictions, labels):
        folder = prediction.parent / "eval" / prediction.name.split(".")[0]
        hsam("evaluate", str(prediction), "--labels", str(label), "--label-map", str(label_map), "--out", str(folder))
        dice.update(scores(folder / "metrics.csv"))
    return dice


def agreement(out: Path, model: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    label_map = out / "totalsegmentator_labels.json"
    mapping = {str(v): TS_ORGANS.get(v, "background") for v in range(256)}
    label_map.write_text(json.dumps({"classes": "btcv8", "map": mapping}, indent=1))
    predictions = []
    for name, image, _ in TS_PAIRS:
        predictions.append(out / f"{name}.nii.gz")
        segment(image, predictions[-1], model)
    dice = evaluate(predictions, [p[2] for p in TS_PAIRS], label_map)
    print(f"\nagreement with TotalSegmentator ({model}): Dice, and volume in mL (ours / TotalSegmentator)")
    print("| scan | " + " | ".join(TS_ORGANS.values()) + " |")
    print("|---" * (len(TS_ORGANS) + 1) + "|")
    for (name, _, reference), prediction in zip(TS_PAIRS, predictions):
        ours = volumes_ml(prediction, MODEL_ORGANS)
        theirs = volumes_ml(reference, TS_ORGANS)
        cells = [f"{dice[name][organ]:.2f} ({ours[organ]:.0f}/{theirs[organ]:.0f})"
                 if ours[organ] or theirs[organ] else "absent" for organ in TS_ORGANS.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


def sizes(out: Path, model: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    images, labels = [], []
    for case in ("case0026", "case0027"):
        image = sitk.ReadImage(str(BTCV / f"{case}_ct.nii.gz"))
        label = sitk.ReadImage(str(BTCV / f"{case}_label.nii.gz"))
        for size in SIZES:
            grid = sitk.Image([size, size, image.GetSize()[2]], sitk.sitkFloat32)
            grid.SetSpacing([image.GetSpacing()[0] * image.GetSize()[0] / size,
                             image.GetSpacing()[1] * image.GetSize()[1] / size, image.GetSpacing()[2]])
            grid.SetOrigin(image.TransformContinuousIndexToPhysicalPoint([-0.5 + 0.5 * 256 / size] * 2 + [0]))
            grid.SetDirection(image.GetDirection())
            images.append(out / f"{case}_{size}_ct.nii.gz")
            labels.append(out / f"{case}_{size}_label.nii.gz")
            sitk.WriteImage(sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, -125.0, sitk.sitkInt16),
                            str(images[-1]))
            sitk.WriteImage(sitk.Resample(label, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0),
                            str(labels[-1]))
    predictions = []
    for image in images:
        predictions.append(out / image.name.replace("_ct.nii.gz", "_pred.nii.gz"))
        segment(image, predictions[-1], model)
    dice = evaluate(predictions, labels, BTCV_LABEL_MAP)
    organs = list(next(iter(dice.values())))
    print(f"\nBTCV held-out cases at other pixel counts ({model}): mean Dice of case0026 and case0027")
    print("| pixels across | " + " | ".join(organs) + " | mean |")
    print("|---" * (len(organs) + 2) + "|")
    for size in SIZES:
        rows = [d for case, d in dice.items() if f"_{size}_" in case]
        means = [np.mean([r[o] for r in rows]) for o in organs]
        print(f"| {size} | " + " | ".join(f"{m:.3f}" for m in means) + f" | {np.mean(means):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--model", default="hsam-abdomen-ct")
    parser.add_argument("--parts", nargs="+", default=["agreement", "sizes"], choices=["agreement", "sizes"])
    args = parser.parse_args()
    for part in args.parts:
        {"agreement": agreement, "sizes": sizes}[part](args.out / part, args.model)


if __name__ == "__main__":
    main()
