"""Where tests put the default dataset root (``liftgs.data.default_dataset_path``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from liftgs.data import default_dataset_path

DATA_ENV = "LIFTGS_DATA"
"""The environment variable ``default_dataset_path`` reads."""


@contextmanager
def default_dataset_at(root: Path) -> Iterator[Path]:
    """Within the block ``default_dataset_path()`` is ``root`` (the variable is restored on exit)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(DATA_ENV, str(root))
        assert default_dataset_path() == root
        yield root
