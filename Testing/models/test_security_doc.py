"""docs/security.md lists bad inputs with the test that covers each: every test it names must exist, so the table
cannot promise what nothing checks."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_test_the_security_table_names_exists():
    text = (REPO / "docs" / "security.md").read_text(encoding="utf-8")
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", text)
    assert len(named) >= 10, "the table of bad inputs is missing or has changed format"
    files = {path.name: path for path in (REPO / "Testing").rglob("test_*.py")}
    missing = [f"{module}::{name}" for module, name in named
               if module not in files or not re.search(rf"^def {name}\(", files[module].read_text(encoding="utf-8"), re.M)]
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"
