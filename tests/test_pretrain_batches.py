"""Pretraining batches from pseudo-labels on a hand-made scene: queries, cross-view targets, feature maps and
the counted skips (missing, empty, corrupt, wrong-width frames)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from liftgs.data.store import write_scene
from liftgs.losses.tokens import positive_tokens
from liftgs.model.projection import feature_projection
from liftgs.model.text import MiniLMTextEncoder
from liftgs.pseudo.segments import PseudoLabels, pseudo_path, save_pseudo_labels, write_labeller_info
from liftgs.scene import NO_INSTANCE
from liftgs.train.batch import SamplerConfig
from liftgs.train.cache import SceneTensorCache, SceneTensors
from liftgs.train.pseudo import (
    CARRIERS,
    SEGMENT_NAME,
    SKIP_NO_FRAMES,
    SKIP_NO_LABELS,
    SKIP_NO_SEGMENTS,
    SKIP_UNREADABLE,
    SKIP_WRONG_WIDTH,
    PseudoBatchSampler,
    PseudoConfig,
    PseudoScene,
    SegmentNamer,
    caption_vocabulary,
    insert_segments,
    scenes_with_pseudo_labels,
)
from tests.support.scenes import toy_scene

DIM = 8
H, W = 12, 16
BASIS = np.eye(DIM, dtype=np.float32)
CHAIR, TABLE, LAMP = 0, 1, 2
FRAME_EMBEDDINGS = {  # frame -> object id -> embedding
    "0": {CHAIR: BASIS[0], TABLE: BASIS[1], LAMP: BASIS[2]},
    # the chair seen again (cosine 0.98 with frame 0's); this lamp looks different (cosine 0.71)
    "1": {CHAIR: BASIS[0] + 0.2 * BASIS[3], TABLE: BASIS[1], LAMP: BASIS[2] + BASIS[4]},
}


def _labels(instance: np.ndarray, embeddings: dict[int, np.ndarray]) -> PseudoLabels:
    """Segments = the frame's visible instances, in object-id order."""
    present = [i for i in sorted(embeddings) if (instance == i).any()]
    segment_map = np.full(instance.shape, -1, dtype=np.int32)
    for k, object_id in enumerate(present):
        segment_map[instance == object_id] = k
    rows = np.stack([embeddings[i] / np.linalg.norm(embeddings[i]) for i in present])
    return PseudoLabels(segment_map, rows, np.ones(len(present), np.float32))


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    """toy_scene with 6 frames: 0 and 1 labelled, 2 empty, 3 5-d embeddings, 4 missing, 5 corrupt."""
    scene = toy_scene(num_frames=6)
    path = tmp_path_factory.mktemp("root") / "scans" / scene.scene_id
    write_scene(scene, path)
    for frame in scene.frames:
        assert frame.instance is not None
        target = pseudo_path(path, frame.name)
        if frame.name in FRAME_EMBEDDINGS:
            save_pseudo_labels(target, _labels(frame.instance, FRAME_EMBEDDINGS[frame.name]))
        elif frame.name == "2":
            empty = np.full(frame.instance.shape, -1, np.int32)
            save_pseudo_labels(target, PseudoLabels(empty, np.zeros((0, DIM), np.float32), np.zeros(0)))
        elif frame.name == "3":
            narrow = {i: BASIS[i, :5] + 0.1 for i in (CHAIR, TABLE, LAMP)}
            save_pseudo_labels(target, _labels(frame.instance, narrow))
        elif frame.name == "5":
            target.write_bytes(b"not an npz file")
    return path


@pytest.fixture(scope="module")
def loaded(scene_dir):
    from liftgs.data.store import load_scene

    scene = load_scene(scene_dir)
    skipped: Counter[str] = Counter()
    return scene, PseudoScene.load(scene, scene_dir, H, W, "pseudo", DIM, skipped), skipped


def test_unusable_frames_are_skipped_and_counted(loaded):
    _, pseudo, skipped = loaded
    assert pseudo.frame_ids == [0, 1]
    assert skipped == {SKIP_NO_SEGMENTS: 1, SKIP_WRONG_WIDTH: 1, SKIP_NO_LABELS: 1, SKIP_UNREADABLE: 1}
    assert pseudo.tensors.instance is None and pseudo.tensors.object_pixels == {}  # no 2D/3D label kept
    assert pseudo.tensors.point_instance is None
    assert pseudo.segments.shape == (2, 2 * H, 2 * W)


def test_targets_are_the_matching_segments_of_every_view(loaded):
    scene, pseudo, _ = loaded
    skipped: Counter[str] = Counter()
    sampler = PseudoBatchSampler(
        SceneTensorCache(lambda _: pseudo), [scene.scene_id], SamplerConfig(1, 10, 2, 1), 0.9, None, skipped
    )
    batch = sampler.sample()[0]
    queries = batch.segment_embeddings
    # distinct queries: chair (seen twice), table (seen twice), and the two different-looking lamps
    assert len(batch.texts) == len(queries) == len(batch.targets.masks) == 4
    assert queries.shape == (4, DIM) and batch.views.features is None
    assert all(text in [carrier.format(SEGMENT_NAME) for carrier in CARRIERS] for text in batch.texts)
    assert batch.targets.names == [[SEGMENT_NAME]] * 4
    frames = [
        int(torch.nonzero((pseudo.tensors.viewmats == v).flatten(1).all(1))[0]) for v in batch.views.viewmats
    ]
    assert sorted(frames) == [0, 1]
    truth = SceneTensors.from_scene(scene, H, W)  # an independent oracle from the instance maps
    expected_objects = {  # query (nearest basis vector, frame it looks like) -> objects it covers per frame
        (0, None): {0: [CHAIR], 1: [CHAIR]},
        (1, None): {0: [TABLE], 1: [TABLE]},
        (2, 0): {0: [LAMP], 1: []},
        (2, 1): {0: [], 1: [LAMP]},
    }
    seen = set()
    for token, mask in zip(queries, batch.targets.masks, strict=True):
        axis = int(token.abs().argmax())
        key = (axis, None if axis != 2 else int(token[4].abs() > 0.1))
        seen.add(key)
        assert mask.shape == (1, 2, H, W)
        for view, frame in enumerate(frames):
            ids = expected_objects[key][frame]
            want = truth.target_masks(ids, [frame])[:, 0].sum(0) if ids else torch.zeros(H, W)
            assert torch.allclose(mask[0, view], want), (key, frame)
    assert seen == set(expected_objects)


def test_feature_maps_carry_projected_segment_embeddings(loaded):
    scene, pseudo, _ = loaded
    projection = feature_projection(DIM, 4, seed=0)
    sampler = PseudoBatchSampler(
        SceneTensorCache(lambda _: pseudo),
        [scene.scene_id],
        SamplerConfig(1, 2, 2, 1),
        0.9,
        projection,
        Counter(),
    )
    views = sampler.sample()[0].views
    assert views.features is not None and views.features.shape == (2, H, W, 4)
    truth = SceneTensors.from_scene(scene, H, W)
    for view, viewmat in enumerate(views.viewmats):
        frame = int(torch.nonzero((truth.viewmats == viewmat).flatten(1).all(1))[0])
        chair = truth.target_masks([CHAIR], [frame])[0, 0] == 1.0
        nothing = (
            (truth.instance[frame] == NO_INSTANCE).unflatten(0, (H, 2)).unflatten(2, (W, 2)).all(1).all(-1)
        )
        embedding = torch.as_tensor(FRAME_EMBEDDINGS[str(frame)][CHAIR])
        direction = torch.nn.functional.normalize(embedding, dim=0) @ projection
        cosine = torch.nn.functional.cosine_similarity(views.features[view][chair], direction[None], dim=-1)
        assert chair.any() and torch.allclose(cosine, torch.ones_like(cosine), atol=1e-2)
        assert nothing.any() and (views.features[view][nothing] == 0).all()


def test_projection_shapes():
    assert feature_projection(DIM, 0) is None
    assert torch.equal(feature_projection(DIM, DIM), torch.eye(DIM))
    assert torch.equal(feature_projection(DIM, 3, seed=5), feature_projection(DIM, 3, seed=5))


def test_scenes_without_pseudo_labels(scene_dir, tmp_path):
    root = scene_dir.parents[1]
    assert scenes_with_pseudo_labels(root, ["toy0000"], "pseudo") == ["toy0000"]
    with pytest.raises(ValueError, match=r"run `liftgs pseudo-label --data .* --folder other` first"):
        scenes_with_pseudo_labels(root, ["toy0000"], "other")


def test_a_scene_without_usable_frames_is_counted(scene_dir):
    from liftgs.data.store import load_scene

    skipped: Counter[str] = Counter()
    assert PseudoScene.load(load_scene(scene_dir), scene_dir, H, W, "pseudo", 7, skipped) is None
    assert skipped[SKIP_NO_FRAMES] == 1 and skipped[SKIP_WRONG_WIDTH] == 3  # frames 0, 1 (8-d) and 3 (5-d)


def test_pseudo_queries_read_like_typed_queries():
    """A carrier's placeholder tokens carry the segment embedding at the encoder's own scale; its other
    tokens, and the alignment positives (the placeholder only), are those of a typed sentence."""
    encoder = MiniLMTextEncoder()
    embeddings = torch.randn(len(CARRIERS), encoder.dim)
    text = encoder.encode([carrier.format(SEGMENT_NAME) for carrier in CARRIERS])
    inserted = insert_segments(text, embeddings)
    length = int(text.mask.shape[1])
    for index, strings in enumerate(text.token_strings):
        slots = positive_tokens(strings, [SEGMENT_NAME], length)[0].nonzero()[:, 0]
        assert [strings[slot] for slot in slots] == [SEGMENT_NAME]
        others = torch.ones(length, dtype=torch.bool)
        others[slots] = False
        assert torch.equal(inserted.tokens[index, others], text.tokens[index, others])
        for slot in slots:
            token = inserted.tokens[index, slot]
            assert torch.isclose(token.norm(), text.tokens[index, slot].norm())
            assert F.cosine_similarity(token, embeddings[index], dim=0) > 0.999
    assert torch.allclose(inserted.pooled.norm(dim=-1), text.pooled.norm(dim=-1))
    assert (F.cosine_similarity(inserted.pooled, embeddings, dim=-1) > 0.999).all()
    with pytest.raises(ValueError, match="no 'segment' word"):
        insert_segments(encoder.encode(["the chair."]), embeddings[:1])


def test_caption_queries_are_names_whose_targets_are_every_segment_of_that_name(loaded):
    scene, pseudo, _ = loaded
    names = ["chair", "table", "lamp", "door"]
    namer = SegmentNamer(names, torch.from_numpy(BASIS[:4]))
    cache = SceneTensorCache(lambda _: pseudo)
    sampler = PseudoBatchSampler(
        cache, [scene.scene_id], SamplerConfig(1, 10, 2, 1), 0.9, None, Counter(), namer=namer
    )
    batch = sampler.sample()[0]
    # both lamps (cosine 0.71 apart) are named "lamp": one query; no segment is nearest "door"
    assert sorted(name for (name,) in batch.targets.names) == ["chair", "lamp", "table"]
    assert batch.segment_embeddings is None
    for text, (name,) in zip(batch.texts, batch.targets.names, strict=True):
        assert text in [carrier.format(name) for carrier in CARRIERS]
    frames = [
        int(torch.nonzero((pseudo.tensors.viewmats == v).flatten(1).all(1))[0]) for v in batch.views.viewmats
    ]
    truth = SceneTensors.from_scene(scene, H, W)
    objects = {"chair": CHAIR, "table": TABLE, "lamp": LAMP}
    for (name,), mask in zip(batch.targets.names, batch.targets.masks, strict=True):
        for view, frame in enumerate(frames):
            assert torch.allclose(mask[0, view], truth.target_masks([objects[name]], [frame])[:, 0].sum(0))


def test_caption_vocabulary_comes_from_the_file_then_the_labeller_record(tmp_path):
    unlabelled, labelled = tmp_path / "a", tmp_path / "b"
    write_labeller_info(labelled, {"labeller": "synthetic", "vocabulary": ["sofa", "lamp"]})
    scene_dirs = [unlabelled, labelled]
    assert caption_vocabulary(PseudoConfig(), scene_dirs) == ["sofa", "lamp"]
    assert caption_vocabulary(PseudoConfig(), [unlabelled]) is None  # no record: embedding queries
    write_labeller_info(unlabelled, {"labeller": "sam+clip"})
    assert caption_vocabulary(PseudoConfig(), scene_dirs) is None  # a record without a vocabulary
    names = tmp_path / "names.txt"
    names.write_text("armchair\n\n  coffee table \n")
    assert caption_vocabulary(PseudoConfig(vocabulary=names), scene_dirs) == ["armchair", "coffee table"]
    names.write_text("\n \n")
    with pytest.raises(ValueError, match="no names"):
        caption_vocabulary(PseudoConfig(vocabulary=names), scene_dirs)
    with pytest.raises(ValueError, match="unreadable"):
        caption_vocabulary(PseudoConfig(vocabulary=tmp_path / "missing.txt"), scene_dirs)
