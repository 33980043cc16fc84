"""Validation Dice of the base model and of the fine-tuned model on the same validation cases, measured the same
way (``hsam evaluate`` on the whole volumes), and written into the fine-tuned model's card by the engine
(``hsam models record-evaluation``).

The engine's own validation Dice (in the card's metrics) is computed on evenly spaced slices at the model's input
resolution to pick the best epoch; this comparison segments every slice on the volume's own grid, as the
Segment module does, so both models are judged on what the user gets."""
import csv
from pathlib import Path
from typing import Any, Dict, List, Optional

from HSAMSharedLib.training_cases import writeJsonAtomic

METRICS_FILE = "metrics.csv"
COMPARISON_FILE = "comparison.json"  # in the run folder


def organDice(evaluationDir: Path) -> Dict[str, float]:
    """Mean Dice over the cases, per organ, from ``hsam evaluate --out``."""
    scores: Dict[str, List[float]] = {}
    with open(Path(evaluationDir) / METRICS_FILE, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            scores.setdefault(row["organ"], []).append(float(row["dice"]))
    return {organ: round(sum(values) / len(values), 4) for organ, values in scores.items()}


def compareModels(baseModel: str, base: Optional[Dict[str, float]], fineTuned: Dict[str, float],
                  cases: List[str]) -> Dict[str, Any]:
    """Per organ and mean Dice of both models; the means are over the organs both models segment (a new class
    has no base Dice), so they compare like with like."""
    base = base or {}
    common = [organ for organ in fineTuned if organ in base]
    organs = {organ: {"base": base.get(organ), "fine_tuned": dice} for organ, dice in fineTuned.items()}
    mean = {"organs": common,
            "base": round(sum(base[o] for o in common) / len(common), 4) if common else None,
            "fine_tuned": round(sum(fineTuned[o] for o in common) / len(common), 4) if common else None}
    return {"protocol": "hsam evaluate: every slice of each validation case segmented on its own grid (with the "
                        "largest-piece post-processing), Dice per organ averaged over the cases",
            "base_model": baseModel, "validation_cases": list(cases), "organs": organs, "mean": mean}


def comparisonLines(comparison: Dict[str, Any]) -> List[str]:
    def text(value):
        return "-" if value is None else f"{value:.3f}"

    lines = [f"Validation Dice, base model {comparison['base_model']} -> fine-tuned:"]
    for organ, dice in comparison["organs"].items():
        lines.append(f"  {organ}: {text(dice['base'])} -> {text(dice['fine_tuned'])}")
    mean = comparison["mean"]
    lines.append(f"  mean: {text(mean['base'])} -> {text(mean['fine_tuned'])}")
    return lines


def writeComparisonRecord(runFolder: Path, comparison: Dict[str, Any], details: Dict[str, Any]) -> Path:
    """The comparison and the module's record of the run (cases with roles and slices, label mapping), in the run
    folder for ``hsam models record-evaluation``, which puts them in the model card (checked against the card's
    schema)."""
    path = Path(runFolder) / COMPARISON_FILE
    writeJsonAtomic(path, {"comparison": comparison, "training": details})
    return path
