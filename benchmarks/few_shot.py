"""A few-shot run as a user makes it: ``hsam train`` on a manifest's training scans, then ``hsam evaluate`` of the
written model on its validation scans as whole volumes (3D Dice per scan and class), and a short report.

    python benchmarks/few_shot.py --manifest M --label-map L --out OUT [--quick] -- <hsam train options>

Writes OUT (the model directory, usable by ``hsam segment --model OUT`` and the Slicer modules),
OUT/validation/{metrics.csv,report.md} from ``hsam evaluate`` and OUT/validation/summary.json: recipe, wall
seconds of training and of evaluation, the training curve (loss and slice-level validation Dice per epoch) and the
mean 3D Dice. The validation scans choose the recipe; they are never a test set.

The recipes were measured with the decoders in bf16 on a CPU that computes it natively; where a CPU does not
(emulated bf16 trains 2-5x slower), the run uses float32 unless the options name a ``--precision``.

``--quick`` is the short form the tests run: the first training and the first validation scan only, one epoch on
the tiny random-weight backbone, so every step of the script runs for real in seconds.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

from hsam.precision import cpu_training_precision

QUICK_OPTIONS = ["--base", "litemedsam_tiny", "--epochs", "1", "--slice-fraction", "0.2", "--cached-views", "1",
                 "--val-slices", "4", "--batch-size", "4"]


def split_cases(manifest: Path, quick: bool) -> Dict[str, List[Dict[str, str]]]:
    """Training and validation cases of the manifest, with paths resolved against the manifest's folder."""
    cases = json.loads(manifest.read_text(encoding="utf-8"))["cases"]
    split: Dict[str, List[Dict[str, str]]] = {"train": [], "val": []}
    for case in cases:
        split[case["split"]].append({key: str((manifest.parent / case[key]).resolve()) for key in ("image", "label")})
    if quick:
        split = {name: entries[:1] for name, entries in split.items()}
    return split


def write_manifest(split: Dict[str, List[Dict[str, str]]], path: Path) -> Path:
    entries = [dict(case, split=name) for name, cases in split.items() for case in cases]
    path.write_text(json.dumps({"cases": entries}, indent=2), encoding="utf-8")
    return path


def run(command: List[str]) -> float:
    print("+", " ".join(command), flush=True)
    start = time.monotonic()
    subprocess.run(command, check=True)
    return time.monotonic() - start


def mean_dice(metrics_csv: Path) -> Dict[str, float]:
    """Mean 3D Dice per class and over classes, from ``hsam evaluate``'s metrics.csv."""
    by_class: Dict[str, List[float]] = {}
    with open(metrics_csv, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("dice") not in (None, "", "nan"):
                by_class.setdefault(row["organ"], []).append(float(row["dice"]))
    means = {name: sum(values) / len(values) for name, values in by_class.items()}
    means["mean"] = sum(means.values()) / len(means) if means else float("nan")
    return means


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, required=True)
    parser.add_argument("--label-map", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--hsam", default="hsam", help="the hsam command (default: hsam on PATH)")
    args, train_options = parser.parse_known_args(argv)
    train_options = [option for option in train_options if option != "--"]
    if args.quick:
        train_options += QUICK_OPTIONS
    if "--precision" not in train_options:
        train_options += ["--precision", cpu_training_precision()]
    split = split_cases(args.manifest, args.quick)
    work = args.out.parent / f"{args.out.name}.work"
    work.mkdir(parents=True, exist_ok=True)
    manifest = write_manifest(split, work / "manifest.json")
    train_s = run([args.hsam, "train", "--cases", str(manifest), "--label-map", str(args.label_map),
                   "--out", str(args.out), "--progress", "none", *train_options])
    validation = args.out / "validation"
    evaluate_s = run([args.hsam, "evaluate", str(args.out), "--label-map", str(args.label_map),
                      "--images", *[c["image"] for c in split["val"]],
                      "--labels", *[c["label"] for c in split["val"]], "--out", str(validation)])
    card = json.loads((args.out / "model.json").read_text(encoding="utf-8"))
    curve = [{key: epoch.get(key) for key in ("epoch", "loss", "val_dice_mean", "stage1_weight")}
             for epoch in card["training"]["history"]]
    summary = {"training_scans": len(split["train"]), "validation_scans": len(split["val"]),
               "train_options": train_options, "train_wall_s": round(train_s, 1),
               "evaluate_wall_s": round(evaluate_s, 1), "training_curve": curve,
               "validation_dice_3d": mean_dice(validation / "metrics.csv")}
    (validation / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(json.dumps(summary["validation_dice_3d"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
