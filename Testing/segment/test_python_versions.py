"""Engine code must run in Slicer's bundled Python: 3.9 (Slicer 5.8) to 3.12 (5.10+)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_engine_has_no_syntax_newer_than_python_39():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e .[test])")
    # E9: syntax errors, judged for the target version (e.g. match statements, parenthesised context managers).
    result = subprocess.run([ruff, "check", "--target-version", "py39", "--select", "E9", "--no-cache",
                             str(REPO / "hsam")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_annotations_avoid_union_operator():
    """``X | Y`` evaluated at run time (outside ``from __future__ import annotations``) fails on 3.9."""
    offenders = []
    for path in (REPO / "hsam").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "| None" in text and "from __future__ import annotations" not in text:
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders, offenders
