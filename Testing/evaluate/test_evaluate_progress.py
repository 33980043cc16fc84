"""``hsam evaluate`` shows progress with an estimate over the whole run, and uses one slice per pass on a CPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import SimpleITK as sitk

from hsam.commands.evaluate import _expand
from hsam.evaluation.run_progress import axial_slices
from hsam.io.volume import read_image

LABEL_MAP = Path(__file__).resolve().parents[2] / "docs" / "examples" / "btcv_synapse_labels.json"


def _crops(data_dir: Path, tmp_path: Path, ranges):
    folder = data_dir / "btcv_synapse" / "256"
    images, labels = [], []
    for n, (case, first, count) in enumerate(ranges):
        for kind, out in (("ct", images), ("label", labels)):
            path = tmp_path / kind / f"{n}_{case}.nii.gz"
            path.parent.mkdir(exist_ok=True)
            sitk.WriteImage(sitk.ReadImage(str(folder / f"{case}_{kind}.nii.gz"))[:, :, first:first + count],
                            str(path))
            out.append(path)
    return images, labels


def test_model_evaluation_progress_over_all_slices_and_cpu_memory(data_dir, tmp_path):
    images, labels = _crops(data_dir, tmp_path, [("case0005", 57, 8), ("case0021", 100, 3)])
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        process = subprocess.Popen([sys.executable, "-m", "hsam", "evaluate", "hsam-abdomen-ct", "--images",
                                    str(tmp_path / "ct"), "--labels", str(tmp_path / "label"), "--label-map",
                                    str(LABEL_MAP), "--device", "cpu", "--progress", "jsonl"], stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, (tmp_path / "err.txt").read_text()
    events = [json.loads(line) for line in (tmp_path / "out.txt").read_text().splitlines()]
    logs = [e["message"] for e in events if e["event"] == "log"]
    assert any("segmenting 2 case(s), 11 slices, 1 slice(s) per pass on cpu" in m for m in logs), logs
    progress = [e for e in events if e["event"] == "progress" and e["stage"] == "segmenting"]
    done = [e["done"] for e in progress]
    assert {e["total"] for e in progress} == {11} and done == sorted(done) and done[-1] == 11
    assert {e["index"] for e in progress} == {0, 1} and 8 in done  # one bar (and estimate) across both cases
    assert events[-1]["event"] == "result" and "| liver |" in events[-1]["table"]
    # One slice per pass: measured 1.5 GB peak on these 8 slices, 4.8 GB with 8 per pass (the old default).
    assert usage.ru_maxrss * 1024 < 3e9, usage.ru_maxrss


def test_prediction_files_report_progress(data_dir, tmp_path):
    _crops(data_dir, tmp_path, [("case0005", 40, 4), ("case0006", 40, 4)])
    result = subprocess.run([sys.executable, "-m", "hsam", "evaluate", str(tmp_path / "label"), "--labels",
                             str(tmp_path / "label"), "--progress", "jsonl"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]  # JSON lines only, the table included
    assert [(e["stage"], e["done"], e["total"]) for e in events if e["event"] == "progress"] == [
        ("checking labels", 1, 2), ("checking labels", 2, 2), ("scoring", 0, 2), ("scoring", 1, 2), ("scoring", 2, 2)]
    assert events[-1]["event"] == "result" and "| 0_case0005 |" in events[-1]["table"]


def test_inputs_and_slice_counts(data_dir, tmp_path):
    dicom = data_dir / "totalsegmentator_tests" / "example_ct_dicom"
    assert _expand([str(dicom)]) == [dicom]  # a DICOM series folder is one volume, not 20 files
    folder = data_dir / "btcv_synapse" / "256"
    assert len(_expand([str(folder)])) == 24
    assert axial_slices(dicom) == 20
    sagittal = read_image(folder / "case0005_ct.nii.gz")[100:110, :, :]
    sagittal = sitk.PermuteAxes(sagittal, [1, 2, 0])  # voxel axes (j, k, i): the slices run along the 2nd axis
    sitk.WriteImage(sagittal, str(tmp_path / "sagittal.nii.gz"))
    assert sagittal.GetSize()[1] == axial_slices(tmp_path / "sagittal.nii.gz") == 117
