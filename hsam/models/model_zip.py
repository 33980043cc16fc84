"""A zip of a model directory, checked before a byte of it is unpacked: every entry's name, the card (read from the
archive and validated), each entry's compression ratio, and the total size against the free disk space. Only the
files the card names are unpacked; anything else in the archive is left in it."""
from __future__ import annotations

import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Dict, Iterator, List

from ..weights import CheckpointError
from .card import CARD_FILE, parse_card
from .safe_path import UnsafeNameError, contained, name_problem

MAX_CARD_BYTES = 16 << 20  # the default model's card is 25 kB
# Deflate packs a run of zeros about 1000:1; weights and JSON pack less than 20:1. A higher ratio on a large entry is
# what a zip bomb looks like.
MAX_RATIO = 100
RATIO_FROM_BYTES = 1 << 20


class ModelZipError(CheckpointError):
    """A file given as a model zip that is not one, is damaged, or is refused before unpacking."""


@contextmanager
def unpacked_model_zip(path: Path, parent: Path) -> Iterator[Path]:
    """The model directory inside the zip ``path``, unpacked into a hidden folder in ``parent`` that is removed
    afterwards. Nothing is written before every check has passed."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = _checked_members(archive, path, parent)
            parent.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(dir=parent, prefix=".unzip-"))
            try:
                for info in members:
                    _unpack(archive, info, folder)
                yield folder / PurePosixPath(members[0].filename).parent
            finally:
                shutil.rmtree(folder)
    except zipfile.BadZipFile as exc:
        raise ModelZipError(f"{path}: not a readable zip file ({exc}); give a model directory, a .zip of one, or "
                            "a .pth checkpoint") from None
    except (RuntimeError, NotImplementedError) as exc:  # encrypted entries, unknown compression methods
        raise ModelZipError(f"{path}: cannot unpack ({exc}); zip the model directory again without a password "
                            "or special compression") from None


def _checked_members(archive: zipfile.ZipFile, path: Path, folder: Path) -> List[zipfile.ZipInfo]:
    """The entries to unpack, card first, after every check that can be made without unpacking."""
    for info in archive.infolist():
        _check_entry(info, path)
    root = _model_root(archive, path)
    files: Dict[PurePosixPath, zipfile.ZipInfo] = {PurePosixPath(i.filename): i for i in archive.infolist()
                                                   if not i.is_dir()}
    card_info = files[root / CARD_FILE]
    if card_info.file_size > MAX_CARD_BYTES:
        raise ModelZipError(f"{path}: {card_info.filename} is {card_info.file_size} bytes, too large for a model card")
    card = parse_card(archive.read(card_info), f"{path}:{card_info.filename}")
    names = list(card["files"]) + [card["backbone_weights"].get("filename")]
    members = [card_info] + [files[root / n] for n in names if n and root / n in files]
    total = sum(i.file_size for i in members)
    free = shutil.disk_usage(_existing(folder)).free
    if total > free:
        raise ModelZipError(f"{path}: unpacking needs {total} bytes but {folder} has {free} free; free some space "
                            "or set HSAM_HOME to a larger disk")
    return members


def _check_entry(info: zipfile.ZipInfo, path: Path) -> None:
    symlink = (info.external_attr >> 16) & 0o170000 == 0o120000
    problem = "it is a symlink" if symlink else \
        name_problem(info.filename.rstrip("/") if info.is_dir() else info.filename, flat=False)
    if problem:
        raise UnsafeNameError(f"{path}: refused, the zip holds an unsafe entry {info.filename!r} ({problem})")
    if info.file_size > RATIO_FROM_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise ModelZipError(f"{path}: refused, entry {info.filename!r} would unpack {info.compress_size} bytes "
                            f"into {info.file_size} (more than {MAX_RATIO}:1, as a zip bomb does)")


def _model_root(archive: zipfile.ZipFile, path: Path) -> PurePosixPath:
    cards = [PurePosixPath(i.filename) for i in archive.infolist() if PurePosixPath(i.filename).name == CARD_FILE]
    if len(cards) != 1:
        raise ModelZipError(f"{path}: holds {len(cards)} {CARD_FILE} files; a model zip holds one model directory")
    return cards[0].parent


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo, folder: Path) -> None:
    """One checked entry, written by name rather than by ``ZipFile.extract``, which would quietly rename an
    unsafe entry instead of refusing it. Reading stops at the entry's declared size, which was checked."""
    target = contained(folder, info.filename, "zip entry", flat=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(info) as source, open(target, "xb") as out:
        shutil.copyfileobj(source, out)
