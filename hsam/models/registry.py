"""What the cache and the catalog hold, side by side: listing, details, verification and removal. Nothing here
uses the network."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..weights import CheckpointError
from .cache import (file_folder, install_dir, installed_model, installed_versions, list_installed, models_root,
    split_ref, wheel_path)
from .card import CARD_FILE, ModelCardError, read_card
from .catalog import CatalogEntry, ModelNotFoundError, load_catalog
from .safe_path import contained
from .verify import Check, Hashed, check_model_dir, entry_checks


def entry_state(entry: CatalogEntry) -> str:
    if entry.install == "weights-file":
        present = all(contained(file_folder(entry), f.name, "catalog file name").is_file() for f in entry.files)
        return "downloaded" if present else "not downloaded"
    if entry.install == "wheel":
        return "in package" if wheel_path(entry) else "package missing"
    if entry.install == "bundled":
        return "bundled" if (entry.path / CARD_FILE).is_file() else "not shipped"
    return "installed" if installed_model(f"{entry.id}@{entry.version}") else "not downloaded"


def entry_path(entry: CatalogEntry) -> Optional[Path]:
    """Where the entry is, or will be once downloaded."""
    if entry.install == "weights-file":
        return contained(file_folder(entry), entry.files[0].name, "catalog file name")
    if entry.install == "wheel":
        return wheel_path(entry)
    if entry.install == "bundled":
        return entry.path
    return install_dir(entry.id, entry.version)


def _card_summary(path: Path) -> Dict[str, Any]:
    """What the card says, or ``{"problem": ...}`` for a card that is missing, unreadable or invalid."""
    try:
        card = read_card(path)
    except (ModelCardError, OSError) as exc:
        return {"problem": str(exc)}
    return {"title": card.get("title", card["id"]), "description": card.get("description", ""),
            "version": card.get("version", ""), "backbone": card["config"].get("backbone"),
            "labels": [label["name"] for label in card["labels"]], "license": card.get("license"),
            "model_files": [{"name": name, "sha256": sha, "size": _size(contained(path, name, "model card file"))}
                            for name, sha in card["files"].items()]}


def _size(path: Path) -> Optional[int]:
    return path.stat().st_size if path.is_file() else None


def _with_card(row: Dict[str, Any], path: Path, title_from_card: bool) -> Dict[str, Any]:
    """A listed model with its labels from its card; a broken card marks the model broken instead of failing."""
    summary = _card_summary(path)
    if "problem" in summary:
        return dict(row, state="broken", labels=[], problem=summary["problem"])
    return dict(row, labels=summary["labels"], problem=None, **({"title": summary["title"]} if title_from_card else {}))


def _catalog_row(entry: CatalogEntry) -> Dict[str, Any]:
    row = {"id": entry.id, "version": entry.version, "kind": entry.kind, "title": entry.title, "source": "catalog",
           "state": entry_state(entry), "size": entry.download_size, "path": str(entry_path(entry) or ""),
           "labels": list(entry.labels), "problem": None}
    if entry.kind == "model" and row["state"] in ("bundled", "installed"):
        return _with_card(row, Path(row["path"]), title_from_card=False)
    return row


def list_models() -> List[Dict[str, Any]]:
    """Every catalog entry and installed model with its state (``broken`` with a ``problem`` for a bad card)."""
    catalog = load_catalog()
    rows = [_catalog_row(e) for e in catalog.values()]
    for model_id, version, path in list_installed():
        entry = catalog.get(model_id)
        if entry is not None and entry.version == version:
            continue  # listed above as an installed catalog model
        rows.append(_with_card({"id": model_id, "version": version, "kind": "model", "title": model_id,
                                "source": "local", "state": "installed", "size": None, "path": str(path)},
                               path, title_from_card=True))
    return rows


def model_info(ref: str) -> Dict[str, Any]:
    model_id, _ = split_ref(ref)
    entry = load_catalog().get(model_id)
    path = installed_model(ref)
    if entry is None and path is None:
        raise ModelNotFoundError(f"'{ref}' is neither installed nor in the catalog (see `hsam models list`)")
    info: Dict[str, Any] = {"id": model_id, "installed": [str(p) for _, p in installed_versions(model_id)]}
    if entry is not None:
        info.update(version=entry.version, kind=entry.kind, title=entry.title, description=entry.description,
                    backbone=entry.backbone, labels=list(entry.labels), license=entry.license,
                    install=entry.install, requires=list(entry.requires), state=entry_state(entry),
                    path=str(entry_path(entry) or ""), download_size=entry.download_size,
                    files=[{"name": f.name, "url": f.url, "size": f.size, "sha256": f.sha256,
                            "folder": str(file_folder(entry))} for f in entry.files])
    if path is None and entry is not None and entry.install == "bundled":
        path = entry.path
    if path is not None:
        summary = _card_summary(path)
        info.update(summary, path=str(path), state="broken" if "problem" in summary else info.get("state", "installed"))
        if path.parent.name == model_id:
            info["version"] = path.name
    return info


def verify(ref: Optional[str] = None) -> List[Check]:
    """Checks of one model (``ref``) or of everything present; the base weights models name are checked too."""
    catalog = load_catalog()
    hashed: Hashed = {}
    if ref is None:
        present = [e for e in catalog.values() if entry_state(e) in ("downloaded", "in package", "bundled")]
        return [c for e in present for c in entry_checks(e, hashed)] + \
            [c for model_id, version, path in list_installed()
             for c in check_model_dir(_item(model_id, version), path, hashed)]
    model_id, version = split_ref(ref)
    found = [(v, p) for v, p in installed_versions(model_id) if version in (None, v)]
    if found:
        return [c for v, p in found for c in check_model_dir(_item(model_id, v), p, hashed)]
    if model_id in catalog:
        return entry_checks(catalog[model_id], hashed)
    raise ModelNotFoundError(f"'{ref}' is neither installed nor in the catalog (see `hsam models list`)")


def _item(model_id: str, version: str) -> str:
    return f"{model_id}@{version}" if version else model_id


def remove(ref: str) -> List[Path]:
    """Delete an installed model (all versions, or ``id@version``) or downloaded base weights; nothing else."""
    model_id, version = split_ref(ref)
    removed = []
    folder = models_root() / model_id
    target = folder / version if version else folder
    if target.is_dir():
        shutil.rmtree(target)
        removed.append(target)
        if version and not any(p for p in folder.iterdir() if not p.name.startswith(".")):
            shutil.rmtree(folder)
    entry = load_catalog().get(model_id)
    if entry is not None and entry.install in ("weights-file", "model-zip", "convert-official") and not version:
        for f in entry.files:  # downloaded files and partial downloads
            for name in (f.name, f"{f.name}.part"):
                path = contained(file_folder(entry), name, "catalog file name")
                if path.is_file():
                    path.unlink()
                    removed.append(path)
    if removed:
        return removed
    if entry is not None and entry.install in ("wheel", "bundled"):
        raise CheckpointError(f"'{model_id}' comes with the installed software and is not removed by hsam")
    raise ModelNotFoundError(f"nothing to remove: '{ref}' is not installed (see `hsam models list`)")
