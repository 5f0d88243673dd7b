"""Pseudo-label storage: round trip, atomic writes, validation, overlapping masks -> segment map."""

from __future__ import annotations

import numpy as np
import pytest

from liftgs.pseudo.segments import (
    NO_SEGMENT,
    PseudoLabelError,
    PseudoLabels,
    load_pseudo_labels,
    masks_to_segment_map,
    pseudo_path,
    save_pseudo_labels,
)


def _labels(dim: int = 6) -> PseudoLabels:
    rng = np.random.default_rng(0)
    segment_map = np.full((12, 16), NO_SEGMENT, dtype=np.int32)
    segment_map[1:5, 1:7] = 0
    segment_map[6:11, 3:15] = 1
    embeddings = rng.normal(size=(2, dim)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return PseudoLabels(segment_map, embeddings, np.array([0.9, 0.5], np.float32), {"labeller": "test"})


def test_round_trip_beside_the_frame(tmp_path):
    labels = _labels()
    save_pseudo_labels(pseudo_path(tmp_path, "7"), labels)
    assert sorted(p.name for p in (tmp_path / "pseudo").iterdir()) == ["7.npz"]  # no partial file left
    loaded = load_pseudo_labels(tmp_path, "7")
    assert loaded.segment_map.dtype == np.int32 and loaded.embeddings.dtype == np.float32
    np.testing.assert_array_equal(loaded.segment_map, labels.segment_map)
    np.testing.assert_allclose(loaded.embeddings, labels.embeddings, atol=1e-3)  # stored as float16
    np.testing.assert_array_equal(loaded.scores, labels.scores)
    assert loaded.masks().shape == (2, 12, 16) and loaded.masks()[1].sum() == 5 * 12
    assert loaded.meta["labeller"] == "test" and loaded.meta["format"] == 1


def test_interrupted_write_leaves_no_labels(tmp_path, monkeypatch):
    def crash(file, **arrays):
        file.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr("liftgs.pseudo.segments.np.savez_compressed", crash)
    with pytest.raises(KeyboardInterrupt):
        save_pseudo_labels(pseudo_path(tmp_path, "0"), _labels())
    assert not pseudo_path(tmp_path, "0").exists()
    with pytest.raises(PseudoLabelError, match="no pseudo-labels"):
        load_pseudo_labels(tmp_path, "0")


def test_wrong_embedding_width_is_a_clear_error(tmp_path):
    save_pseudo_labels(pseudo_path(tmp_path, "0"), _labels(dim=6))
    with pytest.raises(PseudoLabelError, match="6-d but 384-d"):
        load_pseudo_labels(tmp_path, "0", expected_dim=384)


def test_validate_rejects_ids_without_embeddings():
    labels = _labels()
    labels.segment_map[0, 0] = 2  # a third segment, but only two embeddings
    with pytest.raises(PseudoLabelError, match="segment ids"):
        labels.validate("frame 0")


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = pseudo_path(tmp_path, "0")
    path.parent.mkdir()
    path.write_bytes(b"not a zip")
    with pytest.raises(PseudoLabelError, match="unreadable"):
        load_pseudo_labels(tmp_path, "0")


def test_overlapping_masks_keep_small_ones_on_top_and_drop_tiny_ones():
    masks = np.zeros((3, 10, 10), dtype=bool)
    masks[0] = True  # the whole frame
    masks[1, 2:6, 2:6] = True  # a part inside it: stays visible
    masks[2, 8:, 8:] = True  # 4 pixels: below min_area, its pixels go back to mask 0
    segment_map, kept = masks_to_segment_map(masks, min_area=5)
    assert kept.tolist() == [0, 1]
    assert (segment_map[2:6, 2:6] == 1).all()
    assert (segment_map[8:, 8:] == 0).all()
    assert (segment_map == 0).sum() == 100 - 16


def test_no_masks_give_an_empty_map():
    segment_map, kept = masks_to_segment_map(np.zeros((0, 4, 5), dtype=bool))
    assert segment_map.shape == (4, 5) and (segment_map == NO_SEGMENT).all() and len(kept) == 0
