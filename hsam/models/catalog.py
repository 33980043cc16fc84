"""The catalog of known models: ``catalog.json`` shipped with the package, plus catalogs named in ``HSAM_CATALOG``
(paths separated by ``os.pathsep``; an entry there replaces a built-in one with the same id, e.g. to point
``sam-vit-b`` at a mirror inside a hospital network). A catalog is plain JSON data, checked when it is read.

How an entry is installed (``install``):
  weights-file      base weights downloaded into HSAM_HOME/weights
  wheel             base weights inside an installed Python package; nothing is downloaded
  model-zip         a zip of a model directory, downloaded and installed under HSAM_HOME/models
  convert-official  the authors' released checkpoint, downloaded and converted (needs the base weights it names)
  bundled           a model directory inside the package, ``path`` relative to the catalog file; its version and
                    labels are its model card's (a catalog states them only for models it does not ship)
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .card import ModelCardError, read_card
from .safe_path import UnsafeNameError, contained, name_problem

CATALOG_FILE = Path(__file__).with_name("catalog.json")
FORMAT = "hsam-catalog/1"
INSTALL_KIND = {"weights-file": "base-weights", "wheel": "base-weights", "model-zip": "model",
                "convert-official": "model", "bundled": "model"}
DOWNLOADED = ("weights-file", "model-zip", "convert-official")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class CatalogError(ValueError):
    pass


class ModelNotFoundError(ValueError):
    """No installed model and no catalog entry answers to this id (or ``id@version``); the message says where to
    look. A ValueError like every bad-input error, so ``hsam`` prints it as ``hsam: error: ...`` (exit 1). Problems
    with a model that is found (damaged or missing files) stay CheckpointError."""


def check_name(text: str, what: str) -> str:
    """Ids, versions and file names become folder and file names: no separators, no '..', no surprises."""
    if not isinstance(text, str) or not _NAME.fullmatch(text) or ".." in text:
        raise CatalogError(f"{what} {text!r} is not valid: use letters, digits, '.', '_', '+' and '-'")
    return text


@dataclass(frozen=True)
class RemoteFile:
    """A file as the catalog names it; ``url`` is None for files that are never downloaded."""
    name: str
    url: Optional[str] = None
    size: Optional[int] = None
    sha256: Optional[str] = None


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    version: str
    kind: str
    title: str
    description: str
    backbone: str
    labels: Tuple[str, ...]
    license: str
    install: str
    files: Tuple[RemoteFile, ...]
    requires: Tuple[str, ...]
    path: Optional[Path] = None  # bundled: the model directory
    wheel: Optional[Tuple[str, str]] = None  # wheel: (distribution, file inside it)

    @property
    def download_size(self) -> Optional[int]:
        sizes = [f.size for f in self.files]
        return None if None in sizes or not sizes else sum(sizes)


def load_catalog() -> Dict[str, CatalogEntry]:
    extra = [Path(p) for p in os.environ.get("HSAM_CATALOG", "").split(os.pathsep) if p]
    entries: Dict[str, CatalogEntry] = {}
    for path in [CATALOG_FILE, *extra]:
        for entry in read_catalog(path):
            entries[entry.id] = entry
    for entry in entries.values():
        for need in entry.requires:
            if need not in entries:
                raise CatalogError(f"catalog entry {entry.id} requires {need!r}, which no catalog lists")
    return entries


def read_catalog(path: Path) -> List[CatalogEntry]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read the model catalog ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("models"), list):
        raise CatalogError(f"{path}: not a model catalog (expected \"format\": \"{FORMAT}\" and a \"models\" list)")
    return [_entry(item, Path(path)) for item in data["models"]]


def _entry(item: Dict, source: Path) -> CatalogEntry:
    where = f"{source}: entry {item.get('id')!r}" if isinstance(item, dict) else f"{source}: entry"
    try:
        install = item["install"]
        if install not in INSTALL_KIND or item["kind"] != INSTALL_KIND[install]:
            raise CatalogError(f"{where}: install {install!r} with kind {item['kind']!r} is not a known pairing")
        files = tuple(_file(f, where, needs_url=install in DOWNLOADED) for f in item["files"])
        path = contained(source.parent, item["path"], "bundled model path", flat=False) \
            if install == "bundled" else None
        version, labels = _card_facts(path) if path else (item["version"], item["labels"])
        entry = CatalogEntry(
            id=check_name(item["id"], "model id"), version=check_name(str(version), "version") if version else "",
            kind=item["kind"], title=str(item["title"]), description=str(item["description"]),
            backbone=str(item["backbone"]), labels=tuple(str(name) for name in labels),
            license=str(item["license"]), install=install, files=files,
            requires=tuple(check_name(r, "required id") for r in item["requires"]), path=path,
            wheel=(item["wheel"]["distribution"], _wheel_file(item["wheel"]["path"], where))
            if install == "wheel" else None)
    except KeyError as exc:
        raise CatalogError(f"{where} lacks {exc.args[0]!r}") from None
    except (TypeError, AttributeError) as exc:
        raise CatalogError(f"{where} is malformed ({exc})") from None
    except (UnsafeNameError, CatalogError) as exc:  # say which catalog and entry, once
        message = str(exc)
        raise CatalogError(message if message.startswith(where) else f"{where}: {message}") from None
    if install in DOWNLOADED and not files:
        raise CatalogError(f"{where}: names no file to download")
    return entry


def _card_facts(directory: Path) -> Tuple[str, List[str]]:
    """(version, label names) of a shipped model, from its card: one source, so the two cannot disagree. A
    missing or broken card gives ('', []); ``hsam models list`` then shows the model as broken or not shipped."""
    try:
        card = read_card(directory)
    except (ModelCardError, OSError):
        return "", []
    return str(card.get("version") or "1"), [label["name"] for label in card["labels"]]


def _wheel_file(inside: str, where: str) -> str:
    problem = name_problem(inside, flat=False)
    if problem:
        raise CatalogError(f"{where}: wheel path {inside!r} refused: it {problem}")
    return inside


def _file(item: Dict, where: str, needs_url: bool) -> RemoteFile:
    name = check_name(item["name"], "file name")
    url, size, sha = item.get("url"), item.get("size"), item.get("sha256")
    if needs_url and not (isinstance(url, str) and url.startswith(("https://", "http://"))):
        raise CatalogError(f"{where}: file {name} has no http(s) url")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise CatalogError(f"{where}: file {name} has an invalid size {size!r}")
    if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        raise CatalogError(f"{where}: file {name} has an invalid sha256 (64 lowercase hex digits, or null)")
    return RemoteFile(name, url, size, sha)
