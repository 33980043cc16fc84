"""Tables of evaluation results: a CSV row per case and organ, and a Markdown summary (mean ± std over cases)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from .metrics import OrganScore

FIELDS = ("dice", "hd95_voxel", "hd95_mm")


def write_csv(path: Path, results: Dict[str, Dict[int, OrganScore]], names: Dict[int, str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["case", "organ", *FIELDS])
        for case, scores in results.items():
            for value, score in scores.items():
                writer.writerow([case, names[value], *(f"{getattr(score, k):.4f}" for k in FIELDS)])


def summary(results: Dict[str, Dict[int, OrganScore]], values: Sequence[int]) -> Dict[int, Dict[str, tuple]]:
    out = {}
    for value in values:
        rows = [scores[value] for scores in results.values()]
        out[value] = {k: (float(np.mean([getattr(r, k) for r in rows])), float(np.std([getattr(r, k) for r in rows])))
                      for k in FIELDS}
    return out


def markdown(results: Dict[str, Dict[int, OrganScore]], names: Dict[int, str]) -> str:
    values = list(names)
    stats = summary(results, values)
    lines = [f"{len(results)} case(s). Dice and HD95 per organ, mean ± std over cases "
             "(HD95 in voxels as in the H-SAM/TransUNet papers, and in mm).", "",
             "| organ | Dice | HD95 (voxel) | HD95 (mm) |", "|---|---|---|---|"]
    for value in values:
        s = stats[value]
        lines.append(f"| {names[value]} | {s['dice'][0]:.3f} ± {s['dice'][1]:.3f} | {s['hd95_voxel'][0]:.1f} ± "
                     f"{s['hd95_voxel'][1]:.1f} | {s['hd95_mm'][0]:.1f} ± {s['hd95_mm'][1]:.1f} |")
    means = {k: np.mean([stats[v][k][0] for v in values]) for k in FIELDS}
    lines.append(f"| **mean** | **{means['dice']:.3f}** | **{means['hd95_voxel']:.1f}** | **{means['hd95_mm']:.1f}** |")
    lines += ["", "| case | " + " | ".join(names[v] for v in values) + " | mean Dice |",
              "|---|" + "---|" * (len(values) + 1)]
    for case, scores in results.items():
        lines.append(f"| {case} | " + " | ".join(f"{scores[v].dice:.3f}" for v in values)
                     + f" | {np.mean([scores[v].dice for v in values]):.3f} |")
    return "\n".join(lines) + "\n"


def case_names(paths: List[Path]) -> List[str]:
    names = []
    for p in paths:
        name = p.name
        for suffix in (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
        names.append(name)
    return names
