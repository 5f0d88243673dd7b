"""The stand-in labeller: instance masks + MiniLM name embeddings, then seeded noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liftgs.model.text import MiniLMTextEncoder
from liftgs.pseudo.labeller import FrameInput
from liftgs.pseudo.noise import NoiseConfig
from liftgs.pseudo.segments import NO_SEGMENT, PseudoLabelError
from liftgs.pseudo.synthetic import SyntheticLabeller

NAMES = {3: "chair", 5: "table", 9: "trash can", 11: "lamp"}


@pytest.fixture(scope="module")
def encoder():
    return MiniLMTextEncoder()


def _frame(name: str = "0") -> FrameInput:
    instance = np.full((24, 32), NO_SEGMENT, dtype=np.int32)
    instance[2:10, 2:12] = 5
    instance[2:10, 12:20] = 3  # touches the table
    instance[14:22, 4:30] = 9
    image = np.zeros((24, 32, 3), dtype=np.uint8)
    return FrameInput("scan0000", name, image, instance, NAMES)  # lamp (11) is not visible


def test_clean_labels_are_the_instance_masks_with_name_embeddings(encoder):
    frame = _frame()
    labels = SyntheticLabeller(encoder, NoiseConfig().scaled(0.0)).label(frame)
    visible = [3, 5, 9]  # object-id order
    assert labels.num_segments == 3 and labels.embedding_dim == encoder.dim == 384
    for k, object_id in enumerate(visible):
        np.testing.assert_array_equal(labels.segment_map == k, frame.instance == object_id)
    np.testing.assert_array_equal(labels.segment_map == NO_SEGMENT, frame.instance == NO_SEGMENT)
    expected = torch.nn.functional.normalize(encoder.encode([NAMES[i] for i in visible]).pooled, dim=-1)
    np.testing.assert_allclose(labels.embeddings, expected.numpy(), atol=1e-5)
    np.testing.assert_array_equal(labels.scores, 1.0)


def test_noise_is_reproducible_per_frame_and_differs_between_frames(encoder):
    labeller = SyntheticLabeller(encoder, NoiseConfig().scaled(1.0), seed=4)
    first, again, other = (
        labeller.label(_frame("0")),
        labeller.label(_frame("0")),
        labeller.label(_frame("1")),
    )
    np.testing.assert_array_equal(first.segment_map, again.segment_map)
    np.testing.assert_array_equal(first.embeddings, again.embeddings)
    clean = SyntheticLabeller(encoder, NoiseConfig().scaled(0.0)).label(_frame("0"))
    assert not np.array_equal(first.segment_map, clean.segment_map)
    assert not np.array_equal(first.segment_map, other.segment_map)


def test_frame_without_objects_gives_empty_labels(encoder):
    frame = _frame()
    frame.instance[:] = NO_SEGMENT
    labels = SyntheticLabeller(encoder, NoiseConfig().scaled(1.0)).label(frame)
    assert labels.num_segments == 0 and labels.embeddings.shape == (0, 384)
    assert (labels.segment_map == NO_SEGMENT).all()


def test_instance_id_missing_from_the_object_list_is_a_clear_error(encoder):
    frame = _frame()
    frame.object_names = {3: "chair"}
    with pytest.raises(PseudoLabelError, match=r"instance ids \[5, 9\]"):
        SyntheticLabeller(encoder, NoiseConfig()).label(frame)
