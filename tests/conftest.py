"""Shared fixtures: the tiny network's config, the toy scene, the toy dataset, a default dataset root.

Every test runs with ``$LIFTGS_DATA`` (what ``liftgs.data.default_dataset_path`` reads) pointing at an
empty temporary folder, so that no test reads or writes the user's default dataset. The helpers behind
these fixtures live in ``tests.support``; tests that need a variant (another scene, another width) call
them directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from liftgs.data import default_dataset_path
from liftgs.model import LiftGSConfig
from liftgs.scene import Expression, Scene
from tests.support import network, scenes
from tests.support.dataset import DATA_ENV, default_dataset_at


@pytest.fixture(autouse=True, scope="package")
def _default_dataset_is_temporary(tmp_path_factory) -> Iterator[None]:
    """Points the default dataset root at an empty temporary folder for the whole test package."""
    with default_dataset_at(tmp_path_factory.mktemp("default-dataset")):
        yield


@pytest.fixture
def dataset_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default dataset root for this test: a folder that does not exist yet."""
    root = tmp_path / "default-dataset"
    monkeypatch.setenv(DATA_ENV, str(root))
    assert default_dataset_path() == root
    return root


@pytest.fixture
def tiny_config() -> LiftGSConfig:
    """A fresh ``tests.support.network.tiny_config()`` (tests may change it)."""
    return network.tiny_config()


@pytest.fixture
def toy_scene() -> Scene:
    """A fresh ``tests.support.scenes.toy_scene`` with six 48 x 64 frames: a red chair, a green table and a
    blue lamp (objects 0, 1, 2) on a floor."""
    return scenes.toy_scene(num_frames=6)


class ToyDataset(NamedTuple):
    """``write_toy_dataset``'s root, scenes and expressions, and a saved tiny checkpoint."""

    root: Path
    scenes: dict[str, Scene]
    expressions: list[Expression]
    checkpoint: Path


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory) -> ToyDataset:
    """The toy dataset (``tests.support.scenes.write_toy_dataset``) and a tiny random checkpoint, written
    once per module."""
    root = tmp_path_factory.mktemp("toy")
    toy_scenes, expressions = scenes.write_toy_dataset(root)
    return ToyDataset(root, toy_scenes, expressions, network.save_tiny_checkpoint(root / "tiny.pt"))
