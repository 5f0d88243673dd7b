"""Up-front checks of command-line values, run before any work so that a bad flag costs nothing.

Each check raises ``ValueError`` with a one-line message naming the flag; commands turn it into
``SystemExit("liftgs <cmd>: ...")``. Output paths are prepared here too: their folders are created, so the
write at the end of a long run cannot fail on a missing folder.
"""

from __future__ import annotations

import math
from pathlib import Path


def check_probability(value: float, flag: str) -> float:
    """``value`` when it is a finite number strictly between 0 and 1 (a probability threshold)."""
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"{flag} must be a probability strictly between 0 and 1, got {value}")
    return value


def prepare_output_file(path: Path, flag: str) -> Path:
    """``path`` (``~`` expanded) for a file to be written at the end of a run: refused when it names a
    folder or its parent is a file; the parent folders are created now."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    _make_folder(path.parent, f"{flag} {path}")
    return path


def prepare_output_dir(path: Path, flag: str) -> Path:
    """``path`` (``~`` expanded) as a folder to write results into, created now; refused when it is a file."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a folder")
    _make_folder(path, f"{flag} {path}")
    return path


def _make_folder(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"{what}: a file stands where a folder is needed ({folder} or above)") from None
    except OSError as error:
        raise ValueError(f"{what}: cannot create {folder} ({error.strerror})") from None
