"""--precision auto: bf16 on CPUs that compute it natively, read from this machine's /proc/cpuinfo; training keeps
float32 on CPUs."""
from __future__ import annotations

import platform
from pathlib import Path

import pytest
import torch

from hsam.precision import (computes_bf16_natively, cpu_training_precision, inference_autocast_dtype,
                            requested_autocast_dtype, this_cpu_flags)

CPU = torch.device("cpu")
CPUINFO = Path("/proc/cpuinfo")


@pytest.mark.parametrize("flags, native", [
    ({"fpu", "avx2", "avx512f", "avx512bw", "avx512_bf16"}, True),  # AMD Zen 4 / Intel Cooper Lake on
    ({"fpu", "avx2", "avx512f", "amx_tile", "amx_bf16", "amx_int8"}, True),  # Intel Sapphire Rapids (AMX)
    ({"fpu", "avx2", "avx512f", "avx512bw", "avx512_vnni"}, False),  # Skylake/Ice Lake: bf16 only emulated
    ({"fpu", "sse4_2", "avx2", "fma"}, False),
    ({"fp", "asimd", "bf16", "i8mm"}, False),  # an ARM "Features" line: not among the x86 flags it looks for
    (set(), False),  # no /proc/cpuinfo (macOS, Windows)
])
def test_auto_is_bf16_exactly_on_cpus_with_native_bf16(flags, native):
    assert computes_bf16_natively(flags) is native
    assert inference_autocast_dtype(CPU, "auto", flags) == (torch.bfloat16 if native else None)
    # An explicit choice is kept whatever the CPU, and training's auto stays float32 on every CPU.
    assert inference_autocast_dtype(CPU, "fp32", flags) is None
    assert inference_autocast_dtype(CPU, "bf16", flags) == torch.bfloat16
    assert requested_autocast_dtype(CPU, "auto") is None
    # The benchmark recipes measured in bf16 ask for it only where it is not emulated.
    assert cpu_training_precision(flags) == ("bf16" if native else "fp32")


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        inference_autocast_dtype(CPU, "int8", set())


@pytest.mark.skipif(not CPUINFO.is_file(), reason="no /proc/cpuinfo on this system")
def test_this_machines_flags_are_read_from_proc_cpuinfo():
    flags = this_cpu_flags()
    lines = [line for line in CPUINFO.read_text().splitlines() if line.split(":")[0].strip() in ("flags", "Features")]
    assert lines, "no flags line in /proc/cpuinfo"
    assert flags == frozenset(lines[0].split(":", 1)[1].split())
    if platform.machine() in ("x86_64", "AMD64"):
        assert {"fpu", "sse2"} <= flags  # every x86-64 CPU has them: the line was really parsed
    native = bool({"avx512_bf16", "amx_bf16"} & set(lines[0].split()))
    assert inference_autocast_dtype(CPU, "auto") == (torch.bfloat16 if native else None)


def test_a_missing_or_odd_cpuinfo_means_float32(tmp_path):
    assert this_cpu_flags(tmp_path / "absent") == frozenset()
    odd = tmp_path / "cpuinfo"
    odd.write_text("processor\t: 0\nmodel name\t: something\n")
    assert this_cpu_flags(odd) == frozenset()
    odd.write_text("processor\t: 0\nflags\t\t: fpu avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert this_cpu_flags(odd) == {"fpu", "avx512_bf16"}
