"""HSAM Segment's GUI-free parts, one at a time: the worker process runner, error hints, the model list, package
checks that never import torch, engine command lines, and training cases that ``hsam train`` reads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from slicer_segment_fixtures import MODULE_DIR, REPO, load_volume, new_scene, slicer

from HSAMSharedLib import Engine, ModelInfo, WorkerProcess, describeFailure, segmentationModels
from HSAMSegmentLib import SegmentLogic
from HSAMSharedLib.dependencies import missingRequirements, pipSpecifier, readRequirements
from HSAMSharedLib.devices import deviceChoices
from HSAMSharedLib.errors import DOWNLOAD_BLOCKED, KILLED, NO_GPU, OUT_OF_MEMORY
from HSAMSharedLib.models import humanSize, modelsFromEvents
from HSAMSharedLib.training_cases import addTrainingCase, readManifest


def python_worker(code: str, **kwargs) -> WorkerProcess:
    worker = WorkerProcess([sys.executable, "-c", textwrap.dedent(code)], **kwargs)
    worker.start()
    return worker


def test_worker_reads_events_and_the_engine_error_line():
    worker = python_worker("""
        import json, sys
        print(json.dumps({"event": "progress", "done": 1, "total": 2}), flush=True)
        print("a library talking on stdout", flush=True)
        print("Traceback (most recent call last): ...", file=sys.stderr)
        print("hsam: error: in.nrrd: all voxels have one value", file=sys.stderr)
        sys.exit(1)
    """)
    assert worker.wait(60) == 1
    assert worker.events() == [{"event": "progress", "done": 1, "total": 2},
                               {"event": "log", "message": "a library talking on stdout"}]
    assert worker.errorText() == "in.nrrd: all voxels have one value"


def test_worker_error_text_falls_back_to_the_last_stderr_line():
    worker = python_worker("import torch_missing_here")
    assert worker.wait(60) == 1
    assert worker.errorText() == "ModuleNotFoundError: No module named 'torch_missing_here'"


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_cancel_kills_the_whole_process_group_when_it_does_not_stop():
    worker = python_worker("""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a stubborn worker...
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                  "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        print('{"event": "log", "message": "%d"}' % child.pid, flush=True)
        time.sleep(600)
    """, cancelGraceSeconds=0.5)
    deadline = time.monotonic() + 30
    events = []
    while not events and time.monotonic() < deadline:
        events = worker.events()
        time.sleep(0.05)
    child = int(events[0]["message"])
    worker.cancel()
    assert worker.wait(30) is not None and worker.cancelRequested
    time.sleep(0.2)
    assert process_gone(worker.pid) and process_gone(child)  # ...and the process it started are gone


def process_gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for its (new) parent to collect it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("text, hint", [
    ("device cuda:0: no CUDA GPU is available here; use --device cpu or auto", NO_GPU),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", OUT_OF_MEMORY),
    ("cannot download sam_vit_b_01ec64.pth from https://x (timed out). Offline or behind a firewall? ...",
     DOWNLOAD_BLOCKED),
])
def test_failures_get_the_hint_the_readme_explains(text, hint):
    message = describeFailure(1, text)
    assert message.startswith(text) and hint in message
    assert hint in (REPO / "README.md").read_text(encoding="utf-8")


def test_a_silent_kill_is_reported_as_memory_trouble():
    message = describeFailure(-9, "")
    assert KILLED.format(task="segmentation") in message and OUT_OF_MEMORY in message
    assert KILLED.format(task="training") in describeFailure(-9, "", task="training")
    assert describeFailure(2, "") == "The segmentation process failed (exit code 2) without an error message."


def test_model_list_and_organs_from_the_model_card(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"labels": [{"value": 1, "name": "liver"}]}))
    rows = [{"id": "sam-vit-b", "kind": "base-weights", "state": "downloaded", "source": "catalog", "size": 375042383,
             "path": str(tmp_path / "sam.pth")},
            {"id": "mine", "kind": "model", "state": "installed", "source": "local", "path": str(tmp_path)},
            {"id": "hsam-synapse-10pct", "kind": "model", "state": "not downloaded", "source": "catalog",
             "size": None, "path": str(tmp_path / "absent")}]
    models = modelsFromEvents([{"event": "log", "message": "x"}, {"event": "result", "models": rows}])
    assert [m.id for m in segmentationModels(models)] == ["mine", "hsam-synapse-10pct"]
    weights, mine, release = models
    assert weights.downloaded and not mine.downloaded and release.needsDownload and mine.ready
    # A label without a color (the card's color is optional) gets the one the engine gives its segment
    assert mine.organs() == [{"value": 1, "name": "liver", "color": [53, 97, 151]}] and release.organs() == []
    assert weights.description() == "sam-vit-b (downloaded, 375.0 MB)"  # no title in the row: the id
    assert humanSize(None) == "unknown size" and humanSize(999) == "999 B" and humanSize(2.5e9) == "2.5 GB"


def test_clear_deletes_only_downloads(tmp_path):
    home = tmp_path / "home"
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "sam.pth").write_bytes(b"x")
    (home / "downloads").mkdir()
    trained = home / "models" / "mine" / "1"
    trained.mkdir(parents=True)
    logic = SegmentLogic()
    logic.setModelsHome(str(home))
    models = [ModelInfo({"id": "sam-vit-b", "kind": "base-weights", "state": "downloaded", "source": "catalog",
                         "path": str(home / "weights" / "sam.pth")}),
              ModelInfo({"id": "mine", "kind": "model", "state": "installed", "source": "local",
                         "path": str(trained)})]
    assert logic.clearDownloadedModels(models) == [home / "weights" / "sam.pth", home / "downloads"]
    assert trained.is_dir()


def test_package_checks_never_import_torch():
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(MODULE_DIR)!r})
        import HSAMSegmentLib, HSAMSharedLib
        from HSAMSharedLib.dependencies import missingRequirements
        from HSAMSharedLib.devices import deviceChoices
        missingRequirements(); deviceChoices()
        assert "torch" not in sys.modules and "hsam" not in sys.modules, "imported torch or the engine"
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_requirements_are_lower_bounds_checked_against_installed_versions():
    requirements = readRequirements()
    assert all(not str(r.specifier).startswith("==") for r in requirements)
    assert "torch" in [r.name for r in requirements]
    assert missingRequirements() == []  # this environment runs the engine
    assert pipSpecifier(next(r for r in requirements if r.name == "safetensors")) == "safetensors>=0.4"


def test_engine_command_and_environment(tmp_path):
    engine = Engine(python="py", modelsHome=tmp_path)
    args = engine.segmentCommand(tmp_path / "in.nrrd", tmp_path / "out.seg.nrrd", "tiny", "cuda:1",
                                 ["liver", "right kidney"], postprocess=False)
    assert args == ["py", "-m", "hsam", "segment", str(tmp_path / "in.nrrd"), "-o", str(tmp_path / "out.seg.nrrd"),
                    "--device", "cuda:1", "--progress", "jsonl", "--model", "tiny", "--organs", "liver",
                    "right kidney", "--no-postprocess"]
    env = engine.environment()
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)  # the source checkout's engine
    assert env["HSAM_HOME"] == str(tmp_path)
    assert engine.downloadCommand("sam-vit-b")[3:] == ["models", "download", "sam-vit-b", "--yes", "--progress",
                                                       "jsonl"]


def test_device_choices_list_the_gpus_the_driver_lists(tmp_path, monkeypatch):
    # On this machine: one cuda:N per GPU that PyTorch (the engine's authority) sees, none without a driver.
    count = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                           capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    choices = deviceChoices()
    assert choices[:2] == ["auto", "cpu"]
    assert [c for c in choices if c.startswith("cuda")] == [f"cuda:{i}" for i in range(int(count))]
    if os.name == "nt":
        return
    # A driver that lists two GPUs: the real `nvidia-smi -L` output format, from a program on PATH.
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n[ \"$1\" = -L ] || exit 1\n"
                   "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0a1b)'\necho 'GPU 1: NVIDIA A100 (UUID: GPU-2c3d)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert deviceChoices()[:4] == ["auto", "cpu", "cuda:0", "cuda:1"]
    assert [c for c in deviceChoices() if c.startswith("cuda")] == ["cuda:0", "cuda:1"]


def test_a_second_start_or_a_missing_input_is_refused(tiny_model, data_dir, tmp_path):
    logic = SegmentLogic()
    logic.setModelsHome(str(tmp_path / "home"))
    logic.tempRoot = str(tmp_path)
    with pytest.raises(ValueError, match="input volume"):
        logic.startSegmentation(None)
    scene = new_scene()
    volume = load_volume(scene, data_dir / "totalsegmentator_tests" / "example_ct_sm.nii.gz")
    nodes_before = scene.GetNumberOfNodes()
    job = logic.startSegmentation(volume, None, model=str(tiny_model), device="cpu")
    try:
        with pytest.raises(RuntimeError, match="already running"):  # a second click never starts a second job
            logic.startSegmentation(volume, None, model=str(tiny_model), device="cpu")
        assert logic.job is job
    finally:
        job.cancel()
        job.wait()
    assert job.cancelled and scene.GetNumberOfNodes() == nodes_before


def test_training_cases_are_a_manifest_hsam_train_reads(tmp_path):
    import SimpleITK as sitk

    from hsam.io.volume import read_image
    from hsam.models import BTCV_8_ORGANS
    from hsam.models.label_map import load_label_map
    from hsam.train.case_loading import read_segmentation
    from hsam.train.case_manifest import read_manifest

    scene = new_scene()
    SegmentLogic()  # registers the segmentation converters before the segmentation below is created
    ijk_to_ras = slicer.util.vtkMatrixFromArray(np.diag([-2.0, -2.0, 3.0, 1.0]))
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "case one")
    slicer.util.updateVolumeFromArray(volume, np.arange(4 * 8 * 8, dtype=np.int16).reshape(4, 8, 8))
    volume.SetIJKToRASMatrix(ijk_to_ras)
    labels = np.zeros((4, 8, 8), dtype=np.uint8)
    labels[1:3, 2:5, 2:6] = 1
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    slicer.util.updateVolumeFromArray(labelmap, labels)
    labelmap.SetIJKToRASMatrix(ijk_to_ras)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations.SetMRMLScene(scene)
    assert segmentations.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    segmentation.GetSegmentation().GetNthSegment(0).SetName("liver")

    first = addTrainingCase(volume, segmentation, tmp_path)
    assert addTrainingCase(volume, segmentation, tmp_path) == first  # saved again: its case is updated
    assert len(readManifest(tmp_path)) == 1
    corrected = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")  # another segmentation of the same volume
    corrected.GetSegmentation().DeepCopy(segmentation.GetSegmentation())
    second = addTrainingCase(volume, corrected, tmp_path)
    assert (first.name, second.name) == ("case_one", "case_one_2")
    assert [c["image"] for c in readManifest(tmp_path)] == ["case_one/image.nrrd", "case_one_2/image.nrrd"]
    case = read_manifest(tmp_path / "cases.json").cases[1]
    classes = read_segmentation(case.label, read_image(case.image), load_label_map(None, BTCV_8_ORGANS), case.name)
    assert (sitk.GetArrayFromImage(classes) == np.where(labels == 1, 5, 0)).all()  # segment "liver" -> class 5


def test_manifest_writes_are_atomic_and_readable_by_others(tmp_path):
    from HSAMSharedLib.training_cases import writeJsonAtomic

    manifest = tmp_path / "cases.json"
    writeJsonAtomic(manifest, {"cases": [1]})
    umask = os.umask(0)
    os.umask(umask)
    assert manifest.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    with pytest.raises(ValueError):
        writeJsonAtomic(manifest, {"cases": [float("nan")]})  # fails half-way through writing
    assert json.loads(manifest.read_text()) == {"cases": [1]} and sorted(tmp_path.iterdir()) == [manifest]
