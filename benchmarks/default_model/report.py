"""The cross-validation and ablation report from the results of ``crossval.py``.

    python benchmarks/default_model/report.py --work /tmp/hsam-crossval [--recipe RECIPE]

Copies each variant's per-case metrics (``hsam evaluate``'s metrics.csv of every fold, concatenated) to
``crossval/<recipe>/<variant>.csv`` beside this script and writes ``crossval/<recipe>/README.md``. Variants whose
folds are not all finished are reported as incomplete, never averaged over fewer cases silently.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Dict, List

import numpy as np

from crossval import CASES, FOLDS, RECIPES, VARIANTS, fold_cases, run_dir_of
from hsam.evaluation.metrics import OrganScore
from hsam.evaluation.report import markdown
from hsam.models.labels import BTCV_8_ORGANS

HERE = Path(__file__).resolve().parent
NAMES = {s["value"]: s["name"] for s in BTCV_8_ORGANS}
TITLES = {
    "stage1": "stage 1 only (SAMed-style)",
    "mask_attention": "two stages, + learnable mask attention only",
    "cmattn": "two stages, + CMAttn only",
    "pixel_decoder": "two stages, + hierarchical pixel decoder only",
    "all": "all (H-SAM)",
}


def read_variant(work: Path, recipe: str, variant: str, folds: List[int]):
    """({case: {class value: OrganScore}}, wall seconds of training, folds done) of one variant over ``folds``."""
    results: Dict[str, Dict[int, OrganScore]] = {}
    value_of = {name: value for value, name in NAMES.items()}
    train_s, done = 0.0, 0
    for fold in folds:
        run = run_dir_of(work, recipe, variant, fold)
        metrics = run / "eval" / "metrics.csv"
        if not metrics.is_file():
            continue
        done += 1
        with open(metrics, newline="") as f:
            for row in csv.DictReader(f):
                results.setdefault(row["case"], {})[value_of[row["organ"]]] = OrganScore(
                    float(row["dice"]), float(row["hd95_voxel"]), float(row["hd95_mm"]))
        card = json.loads((run / "model" / "model.json").read_text())
        train_s += card["training"]["wall_s"]
    return dict(sorted(results.items())), train_s, done


def write_csv(path: Path, results: Dict[str, Dict[int, OrganScore]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["case", "organ", "dice", "hd95_voxel", "hd95_mm"])
        for case, scores in results.items():
            for value, s in scores.items():
                writer.writerow([case, NAMES[value], f"{s.dice:.4f}", f"{s.hd95_voxel:.4f}", f"{s.hd95_mm:.4f}"])


def case_means(results: Dict[str, Dict[int, OrganScore]]) -> np.ndarray:
    return np.array([np.mean([s.dice for s in scores.values()]) for scores in results.values()])


def ablation_table(work: Path, recipe: str, folds: List[int]) -> List[str]:
    lines = ["| decoder | mean Dice ± std over cases | Δ vs stage 1 (paired over cases) | " + " | ".join(NAMES.values())
             + f" | HD95 (voxel) | HD95 (mm) | training time ({len(folds)} folds) |",
             "|---|---|---|" + "---|" * len(NAMES) + "---|---|---|"]
    baseline = None
    for variant in ("stage1", "mask_attention", "cmattn", "pixel_decoder", "all"):
        results, train_s, done = read_variant(work, recipe, variant, folds)
        if done < len(folds):
            lines.append(f"| {TITLES[variant]} | not run ({done} of {len(folds)} folds) |" + " |" * (len(NAMES) + 4))
            continue
        means = case_means(results)
        if variant == "stage1":
            baseline = means
        delta = "–"
        if baseline is not None and variant != "stage1":
            diff = 100 * (means - baseline)
            delta = f"{diff.mean():+.1f} ± {diff.std():.1f} points, better on {int((diff > 0).sum())} of {len(diff)}"
        organ = [np.mean([r[v].dice for r in results.values()]) for v in NAMES]
        hd_vox = np.mean([s.hd95_voxel for r in results.values() for s in r.values()])
        hd_mm = np.mean([s.hd95_mm for r in results.values() for s in r.values()])
        lines.append(f"| {TITLES[variant]} | {means.mean():.3f} ± {means.std():.3f} | {delta} | "
                     + " | ".join(f"{d:.3f}" for d in organ)
                     + f" | {hd_vox:.1f} | {hd_mm:.1f} | {train_s / 60:.0f} min |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="the --work folder of crossval.py")
    parser.add_argument("--recipe", default="default", choices=list(RECIPES))
    parser.add_argument("--folds", nargs="+", type=int, default=list(range(FOLDS)),
                        help="report these folds only (the report says which, and how many test cases)")
    args = parser.parse_args()
    work, recipe, folds = Path(args.work), args.recipe, sorted(args.folds)
    out = HERE / "crossval" / recipe
    out.mkdir(parents=True, exist_ok=True)
    for variant in VARIANTS:
        results, _, done = read_variant(work, recipe, variant, folds)
        if done == len(folds):
            write_csv(out / f"{variant}.csv", results)
    fold_table = ["| fold | training cases | validation case | test cases |", "|---|---|---|---|"]
    for fold in range(FOLDS):
        train, val, test = fold_cases(fold)
        fold_table.append(f"| {fold} | {', '.join(train)} | {val[0]} | {', '.join(test)} |")
    all_results, _, done = read_variant(work, recipe, "all", folds)
    full = markdown(all_results, NAMES) if done == len(folds) else f"Not finished ({done} of {len(folds)} folds).\n"
    tested = sum(len(fold_cases(f)[2]) for f in folds)
    scope = (f"all {FOLDS} folds, {tested} test cases" if len(folds) == FOLDS else
             f"folds {', '.join(map(str, folds))} of {FOLDS} only, {tested} of {len(CASES)} cases as test cases")
    text = "\n".join([
        "# Cross-validation and ablation on the 12 BTCV cases",
        "",
        f"Produced by `python benchmarks/default_model/crossval.py --work DIR --recipe {recipe}` then "
        f"`python benchmarks/default_model/report.py --work DIR --recipe {recipe}` (see ../../README.md for what "
        "they run).",
        "",
        f"Every run: `hsam train {' '.join(RECIPES[recipe])}` plus the variant's switches, then `hsam evaluate` on "
        "the fold's test cases (whole volumes, 3D metrics, post-processing on).",
        "",
        "## Folds (by case; every case is tested once)",
        "",
        *fold_table,
        "",
        f"## H-SAM (all components): {scope}",
        "",
        full,
        f"## Ablation (paper Table 4), same folds, slices, seed and steps: {scope}",
        "",
        *ablation_table(work, recipe, folds),
        "",
        "Per-case, per-organ numbers: `<variant>.csv` in this folder.",
        "",
    ])
    (out / "README.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
