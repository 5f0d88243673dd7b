"""The stand-in segments walls and floors too: background pixels split by the height of the surface they see,
embedded as "wall" / "floor", stored by ``liftgs pseudo-label`` and lifted onto the points behind them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liftgs.data.store import write_scene
from liftgs.pseudo.command import label_dataset
from liftgs.pseudo.labeller import FrameInput
from liftgs.pseudo.lift import lift_segment_embeddings
from liftgs.pseudo.noise import NoiseConfig
from liftgs.pseudo.segments import NO_SEGMENT, PseudoLabelError, load_pseudo_labels
from liftgs.pseudo.synthetic import SyntheticLabeller, background_classes, surface_heights
from liftgs.scene import Frame, Scene, SceneObject
from tests.support.network import HashTextEncoder

HEIGHT, WIDTH = 24, 32
K = np.array([[16.0, 0, 16], [0, 16.0, 12], [0, 0, 1]])
CAMERA_HEIGHT, WALL_Y = 1.5, 3.0
C2W = np.eye(4)
C2W[:3, :3] = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]  # OpenCV camera looking along world +y, image down = -z
C2W[:3, 3] = [0, 0, CAMERA_HEIGHT]
NAMES = {2: "box", 7: "chair"}


def _ray_y(shape: tuple[int, int], intrinsics: np.ndarray) -> np.ndarray:
    """[H, W] normalised image-down coordinate of each pixel centre (world -z per metre of depth)."""
    v = np.arange(shape[0])[:, None] + 0.5
    return np.broadcast_to((v - intrinsics[1, 2]) / intrinsics[1, 1], shape)


def room_depth(shape: tuple[int, int], intrinsics: np.ndarray) -> np.ndarray:
    """[H, W] z-depth of a camera 1.5 m above the floor z = 0 facing the wall y = 3 (top rows: no depth)."""
    y = _ray_y(shape, intrinsics)
    floor = np.where(y > 0, CAMERA_HEIGHT / np.maximum(y, 1e-9), np.inf)
    depth = np.minimum(floor, WALL_Y).astype(np.float32)
    depth[: shape[0] // 12] = 0.0
    return depth


def truth(
    shape: tuple[int, int] = (HEIGHT, WIDTH), intrinsics: np.ndarray = K
) -> tuple[np.ndarray, np.ndarray]:
    """([H, W] bool floor pixels, [H, W] bool wall pixels) of the room, objects not removed."""
    depth = room_depth(shape, intrinsics)
    floor = (depth > 0) & (depth < WALL_Y - 1e-6)
    return floor, (depth > 0) & ~floor


def room_frame(name: str = "0") -> FrameInput:
    """The room with a chair (7) against the wall and a box (2) on the floor."""
    instance = np.full((HEIGHT, WIDTH), NO_SEGMENT, np.int32)
    instance[8:14, 10:20] = 7
    instance[21:24, 2:6] = 2
    depth = room_depth((HEIGHT, WIDTH), K)
    depth[8:14, 10:20] = 2.5
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    return FrameInput("scan0000", name, image, instance, NAMES, depth, K, K, C2W)


@pytest.fixture(scope="module")
def encoder():
    return HashTextEncoder(dim=16)


def test_clean_labels_are_objects_then_wall_then_floor(encoder):
    frame = room_frame()
    labeller = SyntheticLabeller(encoder, NoiseConfig().scaled(0.0))
    labels = labeller.label(frame)
    floor, wall = truth()
    background = frame.instance == NO_SEGMENT
    expected = [frame.instance == 2, frame.instance == 7, wall & background, floor & background]
    assert labels.num_segments == 4 and all(mask.any() for mask in expected)
    for k, mask in enumerate(expected):
        np.testing.assert_array_equal(labels.segment_map == k, mask)
    np.testing.assert_array_equal(labels.segment_map == NO_SEGMENT, frame.depth == 0)  # no depth: nothing
    names = labeller.embed_names(["box", "chair", "wall", "floor"])
    np.testing.assert_allclose(labels.embeddings, names, atol=1e-6)


def test_noise_acts_on_wall_and_floor_segments_too(encoder):
    labeller = SyntheticLabeller(encoder, NoiseConfig().scaled(1.0), seed=3)
    clean = SyntheticLabeller(encoder, NoiseConfig().scaled(0.0)).label(room_frame())
    changed = [labeller.label(room_frame(str(i))).segment_map != clean.segment_map for i in range(8)]
    wall_or_floor = clean.segment_map >= 2
    assert any((c & wall_or_floor).any() for c in changed)


def test_heights_from_a_lower_resolution_depth_map():
    """A depth camera of half the resolution: the wall's heights are exact, the floor's within 5 cm."""
    shape, color_K = (96, 128), np.array([[128.0, 0, 64], [0, 128.0, 8], [0, 0, 1]])  # looks down
    depth_K = color_K.copy()
    depth_K[:2] /= 2
    depth = room_depth((shape[0] // 2, shape[1] // 2), depth_K)
    heights = surface_heights(shape, color_K, depth, depth_K, C2W)
    floor, wall = truth(shape, color_K)
    seen = np.isfinite(heights)
    assert seen[floor].all() and seen[wall].mean() > 0.8
    exact = CAMERA_HEIGHT - _ray_y(shape, color_K) * WALL_Y
    np.testing.assert_allclose(heights[wall & seen], exact[wall & seen], atol=1e-9)
    assert np.abs(heights[floor]).max() <= 0.05
    image, instance = np.zeros((*shape, 3), np.uint8), np.full(shape, NO_SEGMENT)
    classes = background_classes(FrameInput("s", "0", image, instance, {}, depth, depth_K, color_K, C2W))
    above = wall & seen & (exact > 0.05)  # the wall's bottom 5 cm count as floor
    assert (classes[above] == 0).all() and (classes[floor] == 1).all()


def test_depth_without_pose_is_a_clear_error(encoder):
    frame = room_frame()
    frame.c2w = None
    with pytest.raises(PseudoLabelError, match="depth, intrinsics and pose"):
        SyntheticLabeller(encoder, NoiseConfig().scaled(0.0)).label(frame)


def test_pseudo_label_stores_wall_and_floor_and_lifting_puts_them_on_their_points(tmp_path, encoder):
    frame = room_frame()
    stored = Frame("0", frame.image, frame.depth, K, C2W, instance=frame.instance)
    objects = {i: SceneObject(i, name, np.array([0, 0, 0, 1, 1, 1.0])) for i, name in NAMES.items()}
    points = np.array([[0.0, 2.52, 0.0], [-0.5, 2.52, 0.0], [1.5, WALL_Y, 1.2], [0.5, WALL_Y, 0.6]])
    scene = Scene("scan0000", points, np.zeros_like(points), np.full(4, -1), [stored], objects)
    write_scene(scene, tmp_path / "scans" / "scan0000")
    labeller = SyntheticLabeller(encoder, NoiseConfig().scaled(0.0), text_encoder_spec="hash")
    assert label_dataset(tmp_path, labeller, progress=False).labelled == 1
    labels = load_pseudo_labels(tmp_path / "scans" / "scan0000", "0", expected_dim=16)
    assert labels.num_segments == 4
    info = json.loads((tmp_path / "scans" / "scan0000" / "pseudo" / "labeller.json").read_text())
    assert info["background"] == ["wall", "floor"]

    features, views = lift_segment_embeddings(points, [stored], [labels])
    assert (views == 1).all()
    names = labeller.embed_names(["wall", "floor"])
    nearest = np.argmax(features @ names.T, axis=1)
    np.testing.assert_array_equal(nearest, [1, 1, 0, 0])  # floor points, then wall points
