"""One compute thread per physical core this process may use.

PyTorch starts one thread per physical core of the whole machine. A process pinned to fewer CPUs (``taskset``, a
container's cpuset) or limited by a CPU quota (a container's ``--cpus``) then runs more threads than it has cores,
and they wait on each other at every parallel region; the hardware threads of one core share its vector units, so
matrix products gain little from the second one. ``OMP_NUM_THREADS``, when set, wins.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Iterable, Optional

import torch

SYS_CPU = Path("/sys/devices/system/cpu")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus() -> list:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def physical_cores(cpus: Iterable[int], sys_cpu: Path = SYS_CPU) -> int:
    """Distinct (package, core) pairs among ``cpus``; where the topology is unknown, one core per CPU."""
    cpus = list(cpus)
    cores = set()
    for cpu in cpus:
        topology = sys_cpu / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def cpu_quota(cpu_max: Path = CGROUP_CPU_MAX) -> Optional[int]:
    """CPUs a cgroup v2 quota allows (``cpu.max`` "200000 100000" -> 2), None without a quota."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def compute_threads() -> int:
    quota = cpu_quota()
    cores = physical_cores(usable_cpus())
    return min(cores, quota) if quota else cores


def match_threads_to_cores() -> int:
    """Set torch's thread count to ``compute_threads()`` unless OMP_NUM_THREADS says otherwise; returns it."""
    if not os.environ.get("OMP_NUM_THREADS"):
        threads = compute_threads()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return torch.get_num_threads()
