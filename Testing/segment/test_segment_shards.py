"""``hsam segment`` under torchrun: two gloo processes on the CPU share a folder of volumes, each volume is written
once and has the labels one process gives it, and a volume that fails is reported by name while the others are
written. Also how the volumes are split and which GPU a process takes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from hsam.commands.segment import _check_same_plan
from hsam.commands.segment_plan import Job, shard_jobs
from hsam.distributed import World, process_device


def _segment(*args, torchrun: bool):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"] if torchrun \
        else [sys.executable]
    # One thread per process in both runs, so that both compute each slice alike, to the last bit.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([*launcher, "-m", "hsam", "segment", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)


def test_two_processes_share_the_volumes_and_report_the_one_that_failed(data_dir, tiny_model, tmp_path):
    image = sitk.ReadImage(str(data_dir / "totalsegmentator_tests" / "example_ct_sm.nii.gz"))
    folder = tmp_path / "in"
    folder.mkdir()
    good = []
    for k, name in enumerate("abcd"):  # different sizes: the split goes by bytes
        good.append(folder / f"{name}.nii.gz")
        sitk.WriteImage(image[:, :, 3 * k:3 * k + 6 + 2 * k], str(good[-1]))
    bad = folder / "e.nii.gz"
    bad.write_bytes(b"not a volume")

    out = tmp_path / "out"
    result = _segment(folder, "-o", out, "--model", tiny_model, "--format", ".nii.gz", "--progress", "jsonl",
                      torchrun=True)
    assert result.returncode == 1, result.stderr  # torchrun's status: rank 0 ended with 1 (a volume failed)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    results = [e for e in events if e["event"] == "result"]
    assert sorted(e["input"] for e in results) == [str(p) for p in good]  # each written once, by one process
    assert {e["rank"] for e in results} == {0, 1}
    errors = [e for e in events if e["event"] == "error"]
    assert errors[0]["input"] == str(bad) and "cannot be read" in errors[0]["message"]
    assert errors[-1]["failed"] == [str(bad)] and "1 of 5 inputs failed" in errors[-1]["message"]
    assert "cannot be read" in errors[-1]["messages"][0]
    assert "hsam: error: 1 of 5 inputs failed (" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [p.name for p in good]

    reference = tmp_path / "one_process"
    single = _segment(folder, "-o", reference, "--model", tiny_model, "--format", ".nii.gz", torchrun=False)
    assert single.returncode == 1 and "1 of 5 inputs failed" in single.stderr
    for path in good:
        got = sitk.GetArrayFromImage(sitk.ReadImage(str(out / path.name)))
        expected = sitk.GetArrayFromImage(sitk.ReadImage(str(reference / path.name)))
        assert expected.any()
        np.testing.assert_array_equal(got, expected, err_msg=path.name)


def test_every_volume_goes_to_one_process_and_large_ones_are_spread(tmp_path):
    jobs = []
    for k, size in enumerate([900, 10, 800, 20, 700, 30, 40]):
        source = tmp_path / f"v{k}.nii.gz"
        source.write_bytes(b"x" * size)
        jobs.append(Job(source, tmp_path / f"v{k}.seg.nrrd"))
    shares = [shard_jobs(jobs, rank, 3) for rank in range(3)]
    indices = sorted(index for share in shares for index, _ in share)
    assert indices == list(range(len(jobs)))
    assert all(jobs[index] is job for share in shares for index, job in share)
    assert [sorted(index for index, _ in share if index in (0, 2, 4)) for share in shares] == [[0], [2], [4]]
    assert shard_jobs(jobs, 0, 1) == list(enumerate(jobs))  # a world of one does everything, in order
    assert shard_jobs(jobs[:1], 1, 2) == []  # more processes than volumes: some have none


def test_a_process_under_torchrun_takes_the_gpu_of_its_local_rank():
    second = World(rank=3, size=4, local_rank=1)
    assert process_device(torch.device("cpu"), second) == torch.device("cpu")
    assert process_device(torch.device("cuda"), World()) == torch.device("cuda", 0)
    assert process_device(torch.device("cuda", 1), World()) == torch.device("cuda", 1)  # alone: as asked
    for asked in (torch.device("cuda"), torch.device("cuda", 0)):
        if torch.cuda.device_count() > 1:
            assert process_device(asked, second) == torch.device("cuda", 1)
        else:
            with pytest.raises(ValueError, match="nproc_per_node"):
                process_device(asked, second)


def test_processes_that_see_different_lists_are_refused():
    _check_same_plan([(2, "ab"), (2, "ab")])
    with pytest.raises(ValueError, match="rank 0: 2, rank 1: 3 volumes"):
        _check_same_plan([(2, "ab"), (3, "cd")])
