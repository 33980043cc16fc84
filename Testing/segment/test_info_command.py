"""The command line's first minutes: ``hsam --version``, ``hsam info`` (the default model unless told otherwise),
``hsam info --json`` for bug reports, and the default model as ``hsam models list`` shows it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import hsam
from hsam.cli import main


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.delenv("HSAM_CATALOG", raising=False)
    monkeypatch.setenv("HSAM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"hsam {hsam.__version__}"


def test_info_json_is_one_object_for_a_bug_report(home):
    env = dict(os.environ, HSAM_HOME=str(home))
    result = subprocess.run([sys.executable, "-m", "hsam", "info", "--json"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert list(info) == ["engine_version", "python", "platform", "torch", "cuda", "gpus", "models_folder", "models",
                          "last_log"]
    assert info["engine_version"] == hsam.__version__ and info["python"].startswith(sys.version.split()[0])
    assert isinstance(info["gpus"], list) and info["models_folder"] == str(home) and info["last_log"] is None
    assert {"id": "hsam-abdomen-ct", "version": "3.1", "state": "bundled"} in info["models"]
    logs = home / "logs"
    logs.mkdir(parents=True)
    (logs / "older.log").write_text("a")
    (logs / "newer.log").write_text("b")
    os.utime(logs / "older.log", (time.time() - 60, time.time() - 60))
    result = subprocess.run([sys.executable, "-m", "hsam", "info", "--json"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert json.loads(result.stdout)["last_log"] == str(logs / "newer.log")


def test_info_describes_the_default_model(home, capsys):
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model hsam-abdomen-ct version 3.1, the default model: ")
    assert lines[1] == ("  labels: 1 spleen, 2 right kidney, 3 left kidney, 4 gallbladder, 5 liver, 6 stomach, "
                        "7 aorta, 8 pancreas")


def test_info_of_an_untrained_architecture_says_so(home, capsys):
    assert main(["info", "--backbone", "litemedsam_tiny", "--random"]) == 0
    assert capsys.readouterr().out.startswith("untrained H-SAM (random base weights")
    assert main(["info", "hsam-abdomen-ct", "--backbone", "litemedsam"]) == 1
    assert "not both" in capsys.readouterr().err


def test_list_shows_the_default_model_with_its_version_and_labels(home, capsys):
    assert main(["models", "list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("hsam-abdomen-ct "))
    assert line.split()[1:3] == ["3.1", "model"] and "bundled" in line and line.endswith("[8 labels]")
