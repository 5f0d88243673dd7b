"""Atomic file writes: every file the project writes appears whole or not at all.

A writer gets a temporary file in the target's own folder (same file system, so ``os.replace`` is an
atomic rename); the temporary file is renamed over the target only after the writer returned and the
data were flushed to disk. An exception, a ``KeyboardInterrupt`` or a kill leaves the previous target (or
none) in place and at most a hidden ``.<name>.*.tmp`` file, which readers never match.

Standard library only: the data layer (numpy-only) and every other layer use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"
"""Suffix of the temporary files and folders made here (hidden names: ``.<name>.<random>.tmp``)."""

_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK
"""Mode of the files written here: what ``open(path, "w")`` would give (``mkstemp`` alone gives 0600)."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` when the block ends normally.

    For writers that want a file name rather than a handle (``np.savez``, ``torch.save``, PIL). The
    parent folder must exist. On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(handle)
    os.chmod(temporary, FILE_MODE)
    try:
        yield Path(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = None) -> Iterator[IO[Any]]:
    """``open(path, mode)`` whose content replaces ``path`` only once the block ends normally.

    Args:
        mode: ``"w"`` (text, ``encoding`` default UTF-8) or ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open: mode must be 'w' or 'wb', got {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as temporary, open(temporary, mode, encoding=encoding) as file:
        yield file


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as file:
        file.write(text)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as file:
        file.write(data)


def write_json_atomic(path: str | Path, data: Any, indent: int | None = 1) -> None:
    """Writes ``data`` as strict JSON (no NaN or infinity: ``ValueError``) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=indent, allow_nan=False) + "\n")


def write_with_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Calls ``write(temporary_path)`` and renames the result onto ``path`` (see ``atomic_path``)."""
    with atomic_path(path) as temporary:
        write(temporary)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yields a fresh temporary folder beside ``path``; it becomes ``path`` when the block ends normally.

    An existing ``path`` is replaced (moved aside, then deleted after the rename). On an exception the
    temporary folder is deleted and ``path`` is untouched. Hidden names (``.<name>.*.tmp``) keep the
    temporary folder out of listings that skip dot-files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX))
    os.chmod(temporary, 0o777 & ~_UMASK)
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old.", suffix=TEMP_SUFFIX))
        os.replace(path, old / path.name)
    os.replace(temporary, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is a temporary file or folder made by this module (a hidden ``*.tmp`` name)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)
