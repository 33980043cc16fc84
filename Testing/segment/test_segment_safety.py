"""``hsam segment`` never overwrites an input (whatever the path spelling), refuses name clashes and unusable outputs
before any model loads, goes on after a bad volume in a batch, and writes .mhd pairs under their final names."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from cli_runs import segment_stopped_at_first_progress
import SimpleITK as sitk


NO_MODEL = "no-such-model-dir/x"  # refusals must come before the model loads: this model would fail if it did


@pytest.fixture(scope="module")
def ct(data_dir):
    return sitk.ReadImage(str(data_dir / "btcv_synapse" / "256" / "case0026_ct.nii.gz"))[:, :, 60:63]


def _segment(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hsam", "segment", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def _refused(result, needle):
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("hsam: error:") and needle in lines[-1], lines
    assert "Traceback" not in result.stderr and "not found" not in lines[-1]  # refused before the model loads


def _can_create_in(folder: str) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _snapshot(folder: Path):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("spelling", ["same", "dot_relative", "symlink", "hard_link", "symlinked_folder"])
def test_output_never_overwrites_the_input(ct, tmp_path, spelling):
    work = tmp_path / "work"
    work.mkdir()
    src = work / "v.nii.gz"
    sitk.WriteImage(ct, str(src), True)
    cwd = None
    out = src
    if spelling == "dot_relative":
        cwd, out = work, Path("./sub/../v.nii.gz")
        (work / "sub").mkdir()
    elif spelling == "symlink":
        out = tmp_path / "link.nii.gz"
        out.symlink_to(src)
    elif spelling == "hard_link":
        out = tmp_path / "hard.nii.gz"
        os.link(src, out)
    elif spelling == "symlinked_folder":
        (tmp_path / "alias").symlink_to(work)
        out = tmp_path / "alias" / "v.nii.gz"
    before = _snapshot(work)
    _refused(_segment(src, "-o", out, "--model", NO_MODEL, cwd=cwd), "never overwrite inputs")
    assert _snapshot(work) == before


def test_folder_into_itself_keeps_every_input_and_a_skipped_segmentation(ct, tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    for name in ("a", "b"):
        sitk.WriteImage(ct, str(folder / f"{name}.nii.gz"), True)
    before = _snapshot(folder)
    _refused(_segment(folder, "-o", folder, "--format", ".nii.gz", "--model", NO_MODEL), "never overwrite inputs")
    # A Slicer segmentation beside its CT is not scanned as input, but it is the user's work: never replaced.
    (folder / "a.seg.nrrd").write_bytes(b"manual segmentation")
    before = _snapshot(folder)
    _refused(_segment(folder, "-o", folder, "--model", NO_MODEL), "a.seg.nrrd")
    assert _snapshot(folder) == before


def test_two_inputs_with_one_stem_are_refused_before_work(ct, tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    sitk.WriteImage(ct, str(folder / "a.nii.gz"), True)
    sitk.WriteImage(ct, str(folder / "a.nrrd"))
    _refused(_segment(folder, "-o", tmp_path / "out", "--model", NO_MODEL), "written twice")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / 'a.nii.gz'}\n{folder / 'a.nrrd'}\n")
    _refused(_segment(listing, "-o", tmp_path / "out", "--model", NO_MODEL), "written twice")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case, needle", [
    ("extension", "unsupported output type"), ("format", "with its dot"), ("parent_is_file", "is a file"),
    ("unwritable", "cannot be written"), ("uncertainty_png", "unsupported type for an image output"),
    ("uncertainty_is_output", "written twice"), ("missing_input", "no such file")])
def test_unusable_outputs_fail_before_the_model_loads(ct, tmp_path, case, needle):
    src = tmp_path / "v.nii.gz"
    sitk.WriteImage(ct, str(src), True)
    args = [src, "-o", tmp_path / "out.nii.gz"]
    if case == "extension":
        args[2] = tmp_path / "out.png"
    elif case == "format":
        folder = tmp_path / "cases"
        folder.mkdir()
        sitk.WriteImage(ct, str(folder / "a.nii.gz"), True)
        args = [folder, "-o", tmp_path / "out", "--format", "nii.gz"]
    elif case == "parent_is_file":
        (tmp_path / "file").write_text("x")
        args[2] = tmp_path / "file" / "out.nii.gz"
    elif case == "unwritable":
        if not Path("/sys").is_dir() or _can_create_in("/sys"):
            pytest.skip("needs a folder no one may create files in (/sys on Linux)")
        args[2] = Path("/sys/hsam-test/out.nii.gz")
    elif case == "missing_input":
        args[0] = tmp_path / "absent.nii.gz"
    elif case == "uncertainty_png":
        args += ["--uncertainty", tmp_path / "u.png"]
    else:
        args += ["--uncertainty", tmp_path / "out.nii.gz"]
    before = _snapshot(tmp_path)
    _refused(_segment(*args, "--model", NO_MODEL), needle)
    assert _snapshot(tmp_path) == before  # no label file left behind


def test_batch_goes_on_after_a_bad_volume_and_reports_it(ct, tiny_model, tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    sitk.WriteImage(ct, str(folder / "a.nii.gz"), True)
    bad = folder / "b.nii"
    sitk.WriteImage(ct, str(bad))
    bad.write_bytes(bad.read_bytes()[:-1000])  # truncated
    sitk.WriteImage(ct, str(folder / "c.nrrd"))
    out = tmp_path / "out"
    result = _segment(folder, "-o", out, "--model", tiny_model, "--format", ".nii.gz", "--progress", "jsonl")
    assert result.returncode == 1, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["input"] for e in events if e["event"] == "result"] == [str(folder / "a.nii.gz"), str(folder / "c.nrrd")]
    errors = [e for e in events if e["event"] == "error"]
    assert errors[0]["input"] == str(bad) and "truncated" in errors[0]["message"]
    assert errors[-1]["failed"] == [str(bad)] and "1 of 3 inputs failed" in errors[-1]["message"]
    lines = result.stderr.strip().splitlines()
    assert any(str(bad) in line and "truncated" in line for line in lines if line.startswith("hsam: error:"))
    assert lines[-1].startswith("hsam: error: 1 of 3 inputs failed")
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "c.nii.gz"]

    listing = tmp_path / "list.txt"  # a list with a missing entry goes on as well (console progress)
    listing.write_text(f"{tmp_path / 'absent.nii.gz'}\n{folder / 'a.nii.gz'}\n")
    result = _segment(listing, "-o", tmp_path / "out2", "--model", tiny_model, "--format", ".nrrd")
    assert result.returncode == 1 and "1 of 2 inputs failed" in result.stderr.strip().splitlines()[-1]
    assert "no such file" in result.stderr and (tmp_path / "out2" / "a.nrrd").is_file()


def test_cancel_still_stops_the_whole_batch(data_dir, tiny_model, tmp_path):
    folder = tmp_path / "cases"
    folder.mkdir()
    image = sitk.ReadImage(str(data_dir / "btcv_synapse" / "256" / "case0005_ct.nii.gz"))[:, :, :60]
    for name in ("a", "b"):
        sitk.WriteImage(image, str(folder / f"{name}.nrrd"))
    out = tmp_path / "out"
    events = segment_stopped_at_first_progress(folder, "-o", out, "--model", tiny_model, "--batch-size", "2")
    assert not [e for e in events if e["event"] == "result"] and events[-1].get("cancelled")
    assert not out.exists() or list(out.iterdir()) == []


def test_mhd_output_names_its_own_data_file(ct, tiny_model, tmp_path):
    src = tmp_path / "v.nrrd"
    sitk.WriteImage(ct, str(src))
    out = tmp_path / "out" / "labels.mhd"
    result = _segment(src, "-o", out, "--model", tiny_model, "--uncertainty", tmp_path / "out" / "u.mhd")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["labels.mhd", "labels.zraw", "u.mhd", "u.zraw"]
    assert "ElementDataFile = labels.zraw" in out.read_text(errors="replace")
    labels = sitk.ReadImage(str(out))
    assert labels.GetSize() == ct.GetSize() and np.allclose(labels.GetOrigin(), ct.GetOrigin())
    assert sitk.ReadImage(str(out.parent / "u.mhd")).GetSize() == ct.GetSize()


def test_single_input_into_an_existing_folder(ct, tiny_model, tmp_path):
    src = tmp_path / "v.nii.gz"
    sitk.WriteImage(ct, str(src), True)
    folder = tmp_path / "results"
    folder.mkdir()
    result = _segment(src, "-o", folder, "--model", tiny_model)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in folder.iterdir()] == ["v.seg.nrrd"]
