"""The pseudo-label noise model: each component does what it says, and a seed makes it deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from liftgs.pseudo.noise import NoiseConfig, apply_noise
from liftgs.pseudo.segments import NO_SEGMENT

OFF = {"drop": 0.0, "merge": 0.0, "split": 0.0, "erode": 0.0, "dilate": 0.0, "swap": 0.0}


def only(component: str, probability: float = 1.0) -> NoiseConfig:
    return NoiseConfig(**{**OFF, component: probability}, boundary_px=2)


def _embeddings(count: int) -> np.ndarray:
    rows = np.random.default_rng(1).normal(size=(count, 8)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def separated():
    """Four 12x12 squares 12 px apart (dilation by 2 px never reaches a neighbour) + their embeddings."""
    segment_map = np.full((60, 60), NO_SEGMENT, dtype=np.int32)
    for k, (y, x) in enumerate([(6, 6), (6, 36), (36, 6), (36, 36)]):
        segment_map[y : y + 12, x : x + 12] = k
    return segment_map, _embeddings(4)


@pytest.fixture
def grid():
    """A 3x3 grid of touching 10x10 squares (every segment has a neighbour) + their embeddings."""
    segment_map = np.repeat(np.repeat(np.arange(9).reshape(3, 3), 10, axis=0), 10, axis=1).astype(np.int32)
    return segment_map, _embeddings(9)


def _masks(segment_map: np.ndarray) -> list[np.ndarray]:
    return [segment_map == k for k in range(segment_map.max() + 1)]


def test_level_zero_is_clean(grid):
    segment_map, embeddings = grid
    config = NoiseConfig().scaled(0.0)
    assert config.is_clean
    noisy_map, noisy = apply_noise(segment_map, embeddings, config, np.random.default_rng(0))
    np.testing.assert_array_equal(noisy_map, segment_map)
    np.testing.assert_array_equal(noisy, embeddings)


def test_level_scales_and_clips_probabilities():
    config = NoiseConfig().scaled(0.5)
    assert config.drop == pytest.approx(0.075) and config.boundary_px == NoiseConfig().boundary_px
    assert NoiseConfig(drop=0.6).scaled(2.0).drop == 1.0
    with pytest.raises(ValueError, match="drop"):
        NoiseConfig(drop=1.5)


def test_erosion_shrinks_every_segment_inside_itself(separated):
    segment_map, embeddings = separated
    noisy_map, noisy = apply_noise(segment_map, embeddings, only("erode"), np.random.default_rng(0))
    np.testing.assert_array_equal(noisy, embeddings)
    for before, after in zip(_masks(segment_map), _masks(noisy_map), strict=True):
        assert after.sum() == 8 * 8  # a 2 px rim removed from a 12x12 square
        assert not (after & ~before).any()


def test_dilation_grows_every_segment_around_itself(separated):
    segment_map, embeddings = separated
    noisy_map, _ = apply_noise(segment_map, embeddings, only("dilate"), np.random.default_rng(0))
    for before, after in zip(_masks(segment_map), _masks(noisy_map), strict=True):
        assert after.sum() > before.sum() and not (before & ~after).any()


def test_merge_joins_touching_segments(grid):
    segment_map, embeddings = grid
    noisy_map, noisy = apply_noise(segment_map, embeddings, only("merge"), np.random.default_rng(0))
    assert len(noisy) < len(embeddings)
    for before in _masks(segment_map):  # every old segment lies inside exactly one new one
        assert len(np.unique(noisy_map[before])) == 1
    assert (noisy_map != NO_SEGMENT).all()
    np.testing.assert_allclose(np.linalg.norm(noisy, axis=1), 1.0, atol=1e-5)


def test_split_cuts_segments_in_two_that_share_the_embedding(separated):
    segment_map, embeddings = separated
    noisy_map, noisy = apply_noise(segment_map, embeddings, only("split"), np.random.default_rng(0))
    assert len(noisy) == 2 * len(embeddings)
    for k, after in enumerate(_masks(noisy_map)):
        parents = np.unique(segment_map[after])
        assert len(parents) == 1  # a half lies inside one original segment and keeps its embedding
        np.testing.assert_array_equal(noisy[k], embeddings[parents[0]])
    np.testing.assert_array_equal(noisy_map == NO_SEGMENT, segment_map == NO_SEGMENT)


def test_drop_removes_segments(separated):
    segment_map, embeddings = separated
    noisy_map, noisy = apply_noise(segment_map, embeddings, only("drop"), np.random.default_rng(0))
    assert len(noisy) == 0 and (noisy_map == NO_SEGMENT).all()
    noisy_map, noisy = apply_noise(segment_map, embeddings, only("drop", 0.5), np.random.default_rng(3))
    assert 0 < len(noisy) < len(embeddings)
    for k, after in enumerate(_masks(noisy_map)):  # survivors are untouched
        original = segment_map[after][0]
        np.testing.assert_array_equal(after, segment_map == original)
        np.testing.assert_array_equal(noisy[k], embeddings[original])


def test_swap_permutes_embeddings_only(grid):
    segment_map, embeddings = grid
    noisy_map, noisy = apply_noise(segment_map, embeddings, only("swap"), np.random.default_rng(0))
    np.testing.assert_array_equal(noisy_map, segment_map)
    assert not np.array_equal(noisy, embeddings)
    order = [int(np.flatnonzero((embeddings == row).all(axis=1))[0]) for row in noisy]
    assert sorted(order) == list(range(len(embeddings)))


def test_noise_is_deterministic_per_seed(grid):
    segment_map, embeddings = grid
    config = NoiseConfig().scaled(1.0)
    first = apply_noise(segment_map, embeddings, config, np.random.default_rng(7))
    again = apply_noise(segment_map, embeddings, config, np.random.default_rng(7))
    other = apply_noise(segment_map, embeddings, config, np.random.default_rng(8))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not (np.array_equal(first[0], other[0]) and np.array_equal(first[1], other[1]))


def test_empty_frame_stays_empty():
    segment_map = np.full((5, 5), NO_SEGMENT, dtype=np.int32)
    noisy_map, noisy = apply_noise(
        segment_map, np.zeros((0, 4), np.float32), NoiseConfig(), np.random.default_rng()
    )
    assert (noisy_map == NO_SEGMENT).all() and noisy.shape == (0, 4)
