"""Up-front checks of command-line values, run before any work so that a bad flag costs nothing.

Each check raises ``ValueError`` with a one-line message naming the flag; commands turn it into
``SystemExit("liftgs <cmd>: ...")``. Output paths are checked without creating anything: a missing folder
is fine when it can be made (its nearest existing ancestor is a writable folder); the writer makes it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def check_probability(value: float, flag: str) -> float:
    """``value`` when it is a finite number strictly between 0 and 1 (a probability threshold)."""
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"{flag} must be a probability strictly between 0 and 1, got {value}")
    return value


def check_output_file(path: Path, flag: str) -> Path:
    """``path`` (``~`` expanded) for a file to be written at the end of a run: refused when it names a
    folder or its folder cannot be made."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    _check_can_make(path.parent, f"{flag} {path}")
    return path


def check_output_dir(path: Path, flag: str) -> Path:
    """``path`` (``~`` expanded) as a folder to write results into: refused when it is a file or cannot be
    made."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a folder")
    _check_can_make(path, f"{flag} {path}")
    return path


def _check_can_make(folder: Path, what: str) -> None:
    """Refuses a ``folder`` that neither exists nor can be created under its nearest existing ancestor."""
    ancestor = folder.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{what}: {ancestor} is a file, so the folder {folder} cannot be made")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: no permission to write in {ancestor}")
