"""Write-then-rename, so a crash or a cancel never leaves a half-written file in place of a good one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Union


def write_atomic(path: Union[str, Path], writer: Callable[[str], None], suffix: str = ".tmp") -> Path:
    """Call ``writer(temporary_path)`` (a file beside ``path``), then rename it onto ``path``.

    ``suffix`` matters to writers that pick the format from the file name (e.g. ``.nii.gz``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        writer(tmp)
        # mkstemp creates the file readable by its owner only; give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
