"""The command-line processes keep freed large blocks for reuse instead of returning them to the kernel."""
from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
import numpy as np
from hsam.allocator import keep_freed_memory

if sys.argv[1] == "tuned":
    assert keep_freed_memory()

def rss_kb():
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])

before = rss_kb()
block = np.ones(64 * 2 ** 20 // 8)  # 64 MiB, written so its pages are resident
del block
print(rss_kb() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_64_mib_block_stays_in_the_process_only_when_tuned():
    def kept_kb(mode: str) -> int:
        result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return int(result.stdout.strip())

    assert kept_kb("default") < 8 * 1024  # glibc mmaps such a block and unmaps it on free
    assert kept_kb("tuned") > 56 * 1024  # kept in the heap for the next layer's activations
