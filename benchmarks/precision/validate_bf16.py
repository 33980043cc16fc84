"""bf16 on a CPU against the previous float32 pipeline, case by case, on whole volumes.

For each BTCV case (the 12 of ../shared/data/btcv_synapse/256 by default): the previous ``hsam segment`` pipeline
in float32 (hsam/infer/previous_pipeline.py) and the default pipeline in bf16 (what ``--precision auto`` picks
on a CPU with AVX-512 BF16 or AMX), both post-processed, on the whole volume. Reported per case: the share of
voxels with the same label, the mean Dice over the 8 organs of each against the reference labels (the TransUNet
convention of hsam evaluate), its change, the largest change of one organ's Dice, and each run's seconds.

    python benchmarks/precision/validate_bf16.py [--data DIR] [--cases case0005 ...] [--out table.md]

Run it alone on the machine (the times are the two pipelines' own, side by side, one case after the other).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import SimpleITK as sitk
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hsam.infer import previous_pipeline  # noqa: E402
from hsam.infer.segment import segment_image  # noqa: E402
from hsam.infer.slice_predictor import SlicePredictor  # noqa: E402
from hsam.io.volume import read_image  # noqa: E402
from hsam.models import load_model  # noqa: E402

BTCV_LABELS = ROOT / "docs" / "examples" / "btcv_synapse_labels.json"


def reference_in_model_classes(path: Path, card: Dict) -> np.ndarray:
    """The BTCV label file with its values turned into the model's class values, by organ name."""
    names = json.loads(BTCV_LABELS.read_text())["map"]
    by_name = {spec["name"]: spec["value"] for spec in card["labels"]}
    lut = np.zeros(256, np.uint8)
    for raw, name in names.items():
        lut[int(raw)] = by_name.get(name, 0)
    return lut[sitk.GetArrayFromImage(sitk.ReadImage(str(path)))]


def organ_dice(pred: np.ndarray, ref: np.ndarray, values: List[int]) -> Dict[int, float]:
    """Dice per organ as hsam evaluate scores it: an empty prediction 0, a prediction where the reference is empty 1."""
    scores = {}
    for value in values:
        p, r = pred == value, ref == value
        if not p.any():
            scores[value] = 0.0
        elif not r.any():
            scores[value] = 1.0
        else:
            scores[value] = float(2 * np.logical_and(p, r).sum() / (p.sum() + r.sum()))
    return scores


def validate_case(ct: Path, label: Path, previous_model, predictor: SlicePredictor) -> Dict:
    card = predictor.model.card
    values = [spec["value"] for spec in card["labels"]]
    image = read_image(ct)
    start = time.perf_counter()
    fp32 = sitk.GetArrayFromImage(previous_pipeline.segment_image(previous_model, image, str(ct)))
    fp32_seconds = time.perf_counter() - start
    start = time.perf_counter()
    bf16 = sitk.GetArrayFromImage(segment_image(predictor, image, source=str(ct))[0])
    bf16_seconds = time.perf_counter() - start
    reference = reference_in_model_classes(label, card)
    dice32, dice16 = organ_dice(fp32, reference, values), organ_dice(bf16, reference, values)
    changes = [dice16[v] - dice32[v] for v in values]
    return {"case": ct.name.split("_")[0], "slices": image.GetSize()[2], "voxels": int(fp32.size),
            "different": int(np.count_nonzero(fp32 != bf16)), "dice_fp32": float(np.mean(list(dice32.values()))),
            "dice_bf16": float(np.mean(list(dice16.values()))), "largest_organ_change": max(changes, key=abs),
            "fp32_seconds": fp32_seconds, "bf16_seconds": bf16_seconds}


def table(rows: List[Dict]) -> str:
    lines = ["| case | slices | labels equal | mean Dice fp32 | mean Dice bf16 | change | largest change of one organ "
             "| fp32 s | bf16 s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['slices']} | {100 * (1 - r['different'] / r['voxels']):.3f}% | "
                     f"{r['dice_fp32']:.4f} | {r['dice_bf16']:.4f} | {r['dice_bf16'] - r['dice_fp32']:+.4f} | "
                     f"{r['largest_organ_change']:+.4f} | {r['fp32_seconds']:.0f} | {r['bf16_seconds']:.0f} |")
    voxels, different = sum(r["voxels"] for r in rows), sum(r["different"] for r in rows)
    fp32, bf16 = np.mean([r["dice_fp32"] for r in rows]), np.mean([r["dice_bf16"] for r in rows])
    lines.append(f"| all {len(rows)} | {sum(r['slices'] for r in rows)} | {100 * (1 - different / voxels):.3f}% | "
                 f"{fp32:.4f} | {bf16:.4f} | {bf16 - fp32:+.4f} | | {sum(r['fp32_seconds'] for r in rows):.0f} | "
                 f"{sum(r['bf16_seconds'] for r in rows):.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "btcv_synapse" / "256")
    parser.add_argument("--cases", nargs="+", help="case names (default: every *_ct.nii.gz in --data)")
    parser.add_argument("--model", default="hsam-abdomen-ct")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args()
    cts = sorted(args.data.glob("*_ct.nii.gz"))
    if args.cases:
        cts = [ct for ct in cts if ct.name.split("_")[0] in args.cases]
    if not cts:
        parser.error(f"no *_ct.nii.gz cases in {args.data}")
    previous_model = previous_pipeline.load(args.model)
    # The card's inference options off: the previous fp32 pipeline has none, and this isolates the precision.
    predictor = SlicePredictor(load_model(args.model), torch.device("cpu"), batch_size=1, precision="bf16",
                               slice_smoothing=0.0, box_prompts=0.0)
    print(f"{len(cts)} cases of {args.data}, {args.model}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}", flush=True)
    rows = []
    for ct in cts:
        rows.append(validate_case(ct, ct.with_name(ct.name.replace("_ct", "_label")), previous_model, predictor))
        r = rows[-1]
        print(f"{r['case']}: {100 * (1 - r['different'] / r['voxels']):.3f}% equal, Dice {r['dice_fp32']:.4f} -> "
              f"{r['dice_bf16']:.4f}", flush=True)
    text = table(rows)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
