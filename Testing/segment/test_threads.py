"""Compute threads: one per physical core this process may use, within a container's CPU quota."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import torch

from hsam.infer.threads import compute_threads, cpu_quota, match_threads_to_cores, physical_cores, usable_cpus


@pytest.mark.skipif(shutil.which("lscpu") is None or not hasattr(os, "sched_getaffinity"),
                    reason="needs lscpu and CPU affinity (Linux)")
def test_physical_cores_as_lscpu_counts_them():
    usable = set(usable_cpus())
    rows = subprocess.run(["lscpu", "-p=CPU,CORE,SOCKET"], capture_output=True, text=True, check=True).stdout
    cores = {tuple(row.split(",")[1:]) for row in rows.splitlines()
             if row and not row.startswith("#") and int(row.split(",")[0]) in usable}
    assert physical_cores(usable) == len(cores)


def test_without_topology_every_cpu_counts(tmp_path):
    assert physical_cores([0, 1, 2], sys_cpu=tmp_path) == 3


def test_two_hardware_threads_of_one_core_count_once(tmp_path):
    for cpu, core in ((0, 0), (1, 0), (2, 1), (3, 1)):
        topology = tmp_path / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text("0\n")
        (topology / "core_id").write_text(f"{core}\n")
    assert physical_cores(range(4), sys_cpu=tmp_path) == 2
    assert physical_cores([0, 1], sys_cpu=tmp_path) == 1


@pytest.mark.parametrize("text, cpus", [("max 100000\n", None), ("200000 100000\n", 2), ("150000 100000\n", 2),
                                        ("50000 100000\n", 1)])
def test_a_cgroup_quota_limits_the_threads(tmp_path, text, cpus):
    (tmp_path / "cpu.max").write_text(text)
    assert cpu_quota(tmp_path / "cpu.max") == cpus
    assert cpu_quota(tmp_path / "absent") is None


def test_threads_are_matched_unless_omp_num_threads_is_set(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        torch.set_num_threads(compute_threads() + 3)
        assert match_threads_to_cores() == compute_threads() == torch.get_num_threads()
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(compute_threads() + 1)
        assert match_threads_to_cores() == compute_threads() + 1
    finally:
        torch.set_num_threads(before)
