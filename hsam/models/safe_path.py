"""The one check for file names that come from outside: model cards, catalogs, zip entries and downloads.

Such a name is data written by someone else. Joined to a folder unchecked, ``../../.bashrc``, ``/etc/passwd``,
``C:\\Windows\\x``, ``..\\x`` (a separator on Windows only) or a symlink inside the folder would read or write a
file elsewhere. Every place that turns such a name into a path calls :func:`contained`.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Union

from ..weights import CheckpointError

# Device names Windows opens whatever the folder or extension (CON, NUL.txt, COM1, ...).
_WINDOWS_DEVICE = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?", re.IGNORECASE)


class UnsafeNameError(CheckpointError):
    """A name from a card, catalog, zip or download would reach outside its folder."""


def name_problem(name: object, flat: bool = True) -> Union[str, None]:
    """Why ``name`` may not be used as a file name inside a folder, or None. ``flat``: a single name, no folders;
    otherwise '/'-separated folders are allowed (zip entries, a bundled model's place in the package)."""
    if not isinstance(name, str) or not name:
        return "is not a non-empty text"
    if "\\" in name or ":" in name or "\0" in name:
        return "holds '\\', ':' or a NUL (a separator, drive letter or stream on Windows)"
    if name.startswith("/"):
        return "is an absolute path"
    parts = PurePosixPath(name).parts
    if flat and len(parts) != 1:
        return "holds a '/' (a file name is expected, not a path)"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return "holds an empty, '.' or '..' part"
        if part.endswith((".", " ")) or _WINDOWS_DEVICE.fullmatch(part):
            return f"part {part!r} is not a portable file name (Windows changes or reserves it)"
    return None


def contained(folder: Union[str, Path], name: object, what: str, flat: bool = True) -> Path:
    """``folder / name``, refused (:class:`UnsafeNameError` naming ``what``) unless it stays inside ``folder``,
    also after following any symlink already there."""
    problem = name_problem(name, flat)
    if problem:
        raise UnsafeNameError(f"{what} {name!r} refused: it {problem}; names must stay inside {folder}")
    path = Path(folder) / name
    root = Path(folder).resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise UnsafeNameError(f"{what} {name!r} refused: {path} leads to {resolved} (a symlink), outside {folder}")
    return path
