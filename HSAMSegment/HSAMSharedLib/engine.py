"""How to run the ``hsam`` engine in a child process: which Python, where the engine package is, which models
folder, and the command lines for the engine commands the module uses.

The engine is never imported into Slicer's own process (it imports torch); it always runs as
``python -m hsam ...`` with ``--progress jsonl``. The one exception is a rule the module must apply exactly as the
engine does, kept in an engine file that imports nothing: ``loadEngineFile`` runs that file alone.
"""
import importlib.util
import itertools
import os
import shutil
import sys
import time
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional, Sequence

MODULE_DIR = Path(__file__).resolve().parent.parent


def enginePythonPath(moduleDir: Path = MODULE_DIR) -> Optional[Path]:
    """The folder that holds the ``hsam`` package, or None when it is installed in the Python environment.

    Looked for next to the module (the packaged extension installs it there), then one level up (a source
    checkout used through "Additional module paths")."""
    for folder in (moduleDir, moduleDir.parent):
        if (folder / "hsam" / "__init__.py").is_file():
            return folder
    return None


def engineAvailable(moduleDir: Path = MODULE_DIR) -> bool:
    # find_spec on a top-level name locates the package without importing it (and so without importing torch)
    return enginePythonPath(moduleDir) is not None or importlib.util.find_spec("hsam") is not None


def enginePackageFolder(moduleDir: Path = MODULE_DIR) -> Optional[Path]:
    """The ``hsam`` package's folder (next to the module, or where it is installed), found without importing it."""
    folder = enginePythonPath(moduleDir)
    if folder is not None:
        return folder / "hsam"
    spec = importlib.util.find_spec("hsam")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return Path(locations[0]) if locations else None


@lru_cache(maxsize=None)
def loadEngineFile(relativePath: str, moduleDir: Path = MODULE_DIR) -> ModuleType:
    """One file of the engine, e.g. ``train/slice_counts.py``, run on its own: the ``hsam`` package is not imported
    (that would import torch, and the engine's packages may not be installed yet). Only for files that import
    nothing of the engine; each says so in its docstring."""
    package = enginePackageFolder(moduleDir)
    if package is None or not (package / relativePath).is_file():
        raise RuntimeError("The hsam engine was not found next to the module: reinstall the HSAM extension.")
    name = "_hsam_engine_file_" + relativePath.replace("/", "_").replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, package / relativePath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and typing look their module up there
    spec.loader.exec_module(module)
    return module


def pythonExecutable() -> str:
    """PythonSlicer inside Slicer (it sets up Slicer's Python environment), else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def defaultModelsHome() -> Path:
    """The engine's default models folder (the engine's own rule: $HSAM_HOME, else ~/.hsam)."""
    return Path(os.environ.get("HSAM_HOME") or Path.home() / ".hsam")


LOGS_FOLDER = "logs"  # <models folder>/logs, which `hsam info --json` (and so Diagnostics) reports from
LOGS_KEPT = 20
_logNumbers = itertools.count(1)  # two runs started in one second get two files


class Engine:
    """Command lines and environment for engine child processes."""

    def __init__(self, python: Optional[str] = None, modelsHome: Optional[Path] = None,
                 moduleDir: Path = MODULE_DIR):
        self.python = python or pythonExecutable()
        self.modelsHome = Path(modelsHome) if modelsHome else None
        self.pythonPath = enginePythonPath(moduleDir)

    def command(self, *args: str) -> List[str]:
        return [self.python, "-m", "hsam", *map(str, args)]

    def newLogFile(self, task: str) -> Path:
        """A fresh log file for one engine run, in the models folder's logs; only the newest LOGS_KEPT stay."""
        folder = (self.modelsHome or defaultModelsHome()) / LOGS_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        for old in sorted(folder.glob("*.log"))[:-(LOGS_KEPT - 1)]:
            old.unlink(missing_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return folder / f"{stamp}-{os.getpid()}-{next(_logNumbers)}-{task}.log"

    def environment(self) -> Dict[str, str]:
        env = dict(os.environ)
        if self.pythonPath is not None:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.pythonPath), env.get("PYTHONPATH")) if p)
        if self.modelsHome is not None:
            env["HSAM_HOME"] = str(self.modelsHome)
        env["PYTHONUNBUFFERED"] = "1"  # progress lines must arrive as they are written
        return env

    def segmentCommand(self, inputPath: Path, outputPath: Path, model: Optional[str] = None, device: str = "auto",
                       organs: Optional[Sequence[str]] = None, postprocess: bool = True) -> List[str]:
        args = ["segment", str(inputPath), "-o", str(outputPath), "--device", device or "auto",
                "--progress", "jsonl"]
        if model:
            args += ["--model", str(model)]
        if organs:
            args += ["--organs", *organs]
        if not postprocess:
            args.append("--no-postprocess")
        return self.command(*args)

    def modelsCommand(self, action: str, *args: str) -> List[str]:
        return self.command("models", action, *args, "--progress", "jsonl")

    def downloadCommand(self, modelId: str) -> List[str]:
        # --yes: the module has already shown the size and asked the user
        return self.modelsCommand("download", modelId, "--yes")

    def trainCommand(self, manifest: Path, base: str, out: Path, modelId: str, options: Sequence[str] = (),
                     resume: bool = False) -> List[str]:
        """``hsam train`` on a manifest; ``options`` are further ``hsam train`` options (recipe, device)."""
        args = ["train", "--cases", str(manifest), "--base", str(base), "--out", str(out), "--id", modelId,
                *options, "--progress", "jsonl"]
        return self.command(*args, *(["--resume"] if resume else []))

    def evaluateCommand(self, model: str, images: Sequence[Path], labels: Sequence[Path], out: Path,
                        device: str = "auto") -> List[str]:
        """``hsam evaluate`` of a model on images against their labels; writes metrics.csv to ``out``."""
        return self.command("evaluate", str(model), "--images", *map(str, images), "--labels", *map(str, labels),
                            "--out", str(out), "--device", device or "auto")
