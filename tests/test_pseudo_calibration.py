"""The stand-in's embedding noise: confusion and jitter do what they say, and the nearest-name rate follows
the noise (a hashing text encoder for the mechanism, MiniLM for the calibrated default)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from liftgs.model.text import MiniLMTextEncoder
from liftgs.pseudo.calibration import TARGET_BAND, calibrate_confuse, labelled_frames_rate, nearest_name_rate
from liftgs.pseudo.labeller import FrameInput
from liftgs.pseudo.noise import (
    CONFUSABLE,
    NoiseConfig,
    confusable_names,
    confuse_embeddings,
    jitter_embeddings,
    perturb_embeddings,
)
from liftgs.pseudo.synthetic import SyntheticLabeller
from tests.support.network import HashTextEncoder

CLEAN = NoiseConfig().scaled(0.0)


@pytest.fixture(scope="module")
def encoder():
    return HashTextEncoder(dim=32)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_rate_falls_as_confusion_and_swaps_rise(encoder):
    rates = [nearest_name_rate(encoder, replace(CLEAN, confuse=p), frames=300) for p in (0.0, 0.3, 0.6, 0.9)]
    assert rates[0] == 1.0
    assert all(later < earlier for earlier, later in zip(rates, rates[1:], strict=False))
    assert rates[-1] < 0.5
    assert nearest_name_rate(encoder, replace(CLEAN, swap=0.3), frames=300) < 0.9
    assert nearest_name_rate(encoder, NoiseConfig().scaled(1.0), frames=300) < nearest_name_rate(
        encoder, NoiseConfig().scaled(0.5), frames=300
    )


def test_calibration_finds_the_confusion_that_gives_the_target(encoder):
    confuse = calibrate_confuse(encoder, 0.6, CLEAN, frames=300)
    rate = nearest_name_rate(encoder, replace(CLEAN, confuse=confuse), frames=300)
    assert rate == pytest.approx(0.6, abs=0.02)
    with pytest.raises(ValueError, match="outside"):
        calibrate_confuse(encoder, 0.6, replace(CLEAN, swap=1.0), frames=50)  # swaps alone go below 0.6


def test_a_confused_embedding_is_nearest_to_one_of_its_confusable_names():
    vocabulary = _unit(np.random.default_rng(0).normal(size=(8, 16)))
    confused = confuse_embeddings(vocabulary, vocabulary, 1.0, np.random.default_rng(1))
    candidates = confusable_names(vocabulary, vocabulary)
    assert candidates.shape == (8, CONFUSABLE) and not (candidates == np.arange(8)[:, None]).any()
    nearest = np.argmax(confused @ vocabulary.T, axis=1)
    assert all(nearest[k] in candidates[k] for k in range(8))
    np.testing.assert_allclose(np.linalg.norm(confused, axis=1), 1.0, atol=1e-6)
    untouched = confuse_embeddings(vocabulary, vocabulary, 0.0, np.random.default_rng(1))
    np.testing.assert_array_equal(untouched, vocabulary)


def test_jitter_moves_views_apart_but_keeps_them_above_pretrainings_tau():
    rows = _unit(np.random.default_rng(0).normal(size=(500, 384)))
    jitter = NoiseConfig().jitter
    first = jitter_embeddings(rows, jitter, np.random.default_rng(1))
    second = jitter_embeddings(rows, jitter, np.random.default_rng(2))
    cosine = (first * second).sum(axis=1)
    assert cosine.max() < 0.99 and cosine.min() > 0.9
    assert np.mean(cosine) == pytest.approx(1 / (1 + jitter**2), abs=0.01)


def test_confusion_needs_a_vocabulary_of_two_names():
    rows = _unit(np.ones((2, 4)))
    with pytest.raises(ValueError, match="vocabulary"):
        perturb_embeddings(rows, rows[:1], NoiseConfig(), np.random.default_rng(0))
    assert perturb_embeddings(rows[:0], rows[:1], NoiseConfig(), np.random.default_rng(0)).shape == (0, 4)


def test_level_scales_confusion_and_jitter():
    half = NoiseConfig().scaled(0.5)
    assert half.confuse == pytest.approx(NoiseConfig().confuse / 2)
    assert half.jitter == pytest.approx(NoiseConfig().jitter / 2)
    assert NoiseConfig(jitter=0.4).scaled(4.0).jitter == pytest.approx(1.6)  # a norm, not clipped
    assert NoiseConfig().scaled(0.0).is_clean and not NoiseConfig(jitter=0.1).scaled(1.0).is_clean
    with pytest.raises(ValueError, match="jitter"):
        NoiseConfig(jitter=-0.1)


def test_default_noise_lands_in_the_target_band_with_minilm():
    rate = nearest_name_rate(MiniLMTextEncoder(), NoiseConfig().scaled(1.0), frames=500)
    assert TARGET_BAND[0] <= rate <= TARGET_BAND[1]


def grid_frame(name: str = "3") -> FrameInput:
    """Six touching 8 x 8 objects of six categories, no depth (object segments only)."""
    instance = np.repeat(np.repeat(np.arange(6).reshape(2, 3), 8, axis=0), 8, axis=1).astype(np.int32)
    names = dict(enumerate(["chair", "table", "lamp", "sofa", "bed", "door"]))
    return FrameInput("scan0000", name, np.zeros((16, 24, 3), np.uint8), instance, names)


def test_rate_on_labelled_frames_counts_each_object_segment(encoder):
    frames = [grid_frame(str(i)) for i in range(10)]
    clean = SyntheticLabeller(encoder, CLEAN)
    assert labelled_frames_rate(clean, frames) == (1.0, 60)
    confused, count = labelled_frames_rate(SyntheticLabeller(encoder, replace(CLEAN, confuse=0.5)), frames)
    assert count == 60 and 0.2 < confused < 0.8


def test_embedding_noise_draws_from_its_own_stream(encoder):
    """Changing confusion or jitter leaves the segment noise of every frame as it was."""
    frame = grid_frame()
    base = NoiseConfig().scaled(1.0)
    first = SyntheticLabeller(encoder, base).label(frame)
    second = SyntheticLabeller(encoder, replace(base, confuse=0.9, jitter=0.5)).label(frame)
    np.testing.assert_array_equal(first.segment_map, second.segment_map)
    assert not np.allclose(first.embeddings, second.embeddings)
