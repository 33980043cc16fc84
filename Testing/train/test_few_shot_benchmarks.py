"""The MR few-shot benchmark scripts, each run for real in its --quick form on 2 scans (one to train, one to
validate; tiny random backbone, one epoch): every step a user's run takes, from the clean checkout's scripts to a
model directory that hsam segment uses like any other."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk

from hsam.precision import cpu_training_precision

REPO = Path(__file__).resolve().parents[2]
HSAM = str(Path(sys.executable).with_name("hsam"))


def _run_script(script: str, out: Path, data_dir: Path, **env: str) -> dict:
    environment = dict(os.environ, PYTHON=sys.executable, HSAM=HSAM, **env)
    result = subprocess.run(["bash", str(REPO / script), str(out), "--quick"], cwd=REPO, env=environment,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads((out / "validation" / "summary.json").read_text())


@pytest.mark.parametrize("script, new_scan, classes", [
    ("benchmarks/la_mri/train.sh", "la_mri/5BHTH9RHH3PQT913I59W_mr.nii.gz", ["left atrium"]),
    ("benchmarks/chaos_mr/train.sh", "chaos_t2/image_20.nii.gz", ["spleen", "right kidney", "left kidney", "liver"]),
])
def test_benchmark_script_quick_run(script, new_scan, classes, data_dir, tmp_path):
    out = tmp_path / "model"
    summary = _run_script(script, out, data_dir)
    assert (summary["training_scans"], summary["validation_scans"]) == (1, 1)
    assert len(summary["training_curve"]) == 1 and summary["training_curve"][0]["loss"] > 0
    dice = summary["validation_dice_3d"]
    # Only the classes the label map names are scored: the CHAOS scans label 4 of the model's organs.
    assert sorted(k for k in dice if k != "mean") == sorted(classes)
    assert all(0.0 <= value <= 1.0 for value in dice.values())
    # bf16 only where this CPU computes it natively: emulated, the recipe's hour becomes several.
    assert summary["train_options"][-2:] == ["--precision", cpu_training_precision()]
    card = json.loads((out / "model.json").read_text())
    assert card["normalization"]["kind"] == "percentiles"  # MR: each scan scaled by its own percentiles
    assert set(classes) <= {c["name"] for c in card["labels"]}

    # The written model segments a new scan like any other model.
    image = data_dir / new_scan
    seg = tmp_path / "new_scan.nii.gz"
    result = subprocess.run([HSAM, "segment", str(image), "--model", str(out), "-o", str(seg)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sitk.ReadImage(str(seg)).GetSize() == sitk.ReadImage(str(image)).GetSize()


def test_la_label_map_names_the_left_atrium_with_its_terminology():
    classes = json.loads((REPO / "benchmarks/la_mri/label_map.json").read_text())["classes"]
    assert classes[0]["name"] == "left atrium"
    assert classes[0]["terminology"]["type"]["CodeValue"] == "82471001"  # SNOMED CT: Left atrium
