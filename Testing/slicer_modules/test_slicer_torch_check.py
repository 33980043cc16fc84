"""The PyTorch check of the modules: from the installed package's metadata (torch is never imported into Slicer's
process), refusing a version older than the engine needs, with a message that says what to do. Real metadata:
each version is a ``torch-<version>.dist-info`` folder first on ``sys.path`` of a fresh Python process."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

from slicer_segment_fixtures import MODULE_DIR, REPO

from HSAMSharedLib.dependencies import readRequirements, torchProblem

VERSIONS = ["1.13.1", "2.0.1", "2.3.1+cu121", "2.4.0a0", "2.4.0", "2.4.1+cpu", "2.14.1+cu130", "2.16.0.dev20270101"]


def torch_bound() -> str:
    return str(next(r for r in readRequirements() if r.name == "torch").specifier)


def check_versions(tmp_path) -> dict:
    """For each version: (is torch listed as missing, torchProblem(), describeMissing) with only that version's
    metadata installed, and whether anything imported torch."""
    folders = {}
    for version in VERSIONS:
        dist_info = tmp_path / version / f"torch-{version}.dist-info"
        dist_info.mkdir(parents=True)
        (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        folders[version] = str(tmp_path / version)
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(MODULE_DIR)!r})
        from HSAMSharedLib.dependencies import describeMissing, missingRequirements, torchProblem
        results = {{}}
        for version, folder in json.loads(sys.argv[1]).items():
            sys.path.insert(0, folder)
            missing = [r for r in missingRequirements() if r.name == "torch"]
            results[version] = [bool(missing), torchProblem(), describeMissing(missing[0]) if missing else ""]
            sys.path.remove(folder)
        sys.path[:] = [p for p in sys.path if "site-packages" not in p]  # no torch at all
        results["none"] = [bool([r for r in missingRequirements() if r.name == "torch"]), torchProblem(), ""]
        results["torch imported"] = "torch" in sys.modules
        print(json.dumps(results))
    """)
    result = subprocess.run([sys.executable, "-c", code, json.dumps(folders)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_torch_older_than_the_engine_needs_is_refused_without_importing_it(tmp_path):
    assert torch_bound() == ">=2.4"
    results = check_versions(tmp_path)
    assert results.pop("torch imported") is False
    assert results.pop("none") == [True, "PyTorch is not installed; HSAM needs torch>=2.4.", ""]
    refused = [version for version, (missing, problem, _) in results.items() if missing]
    assert refused == ["1.13.1", "2.0.1", "2.3.1+cu121", "2.4.0a0"]
    for version in refused:
        missing, problem, listed = results[version]
        assert f"PyTorch {version} is installed, but HSAM needs torch>=2.4" in problem
        assert "PyTorch Utils" in problem and "restart Slicer" in problem
        assert listed == f"torch>=2.4 ({version} is installed: too old)"
    for version in ("2.4.0", "2.4.1+cpu", "2.14.1+cu130", "2.16.0.dev20270101"):
        assert results[version] == [False, "", ""]


def test_this_environment_passes():
    assert torchProblem() == ""  # the engine runs here


def test_the_module_and_the_engine_package_ask_for_the_same_torch():
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'"torch([^"]*)"', pyproject).group(1) == torch_bound()
