"""Tests of the network parts: voxelisation, serialisation, encoder, Gaussian head, decoder, LiftGS."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from liftgs.model import (
    LiftGS,
    TextFeatures,
    answer_voxels,
    grounded_voxels,
    link_distance,
    mask_box,
    voxelize,
)
from liftgs.model.affinity import AFFINITY_OFFSET_INIT, AFFINITY_SCALE_INIT, LiftedAffinity
from liftgs.model.decoder import GroundingHeads
from liftgs.model.encoder import PointEncoder, Rotary3D, build_levels
from liftgs.model.projection import feature_projection
from liftgs.model.serialization import ORDERS, hilbert_code, morton_code, serialize
from liftgs.model.voxelize import grid_coords
from tests.support.network import VOXEL, HashTextEncoder, tiny_config


def tiny_model(seed: int = 0, **gaussians) -> LiftGS:
    """The tiny network with the hash text encoder, seeded; ``gaussians`` override its GaussianConfig."""
    config = tiny_config()
    config.gaussians = dataclasses.replace(config.gaussians, **gaussians)
    torch.manual_seed(seed)
    return LiftGS(config, text_encoder=HashTextEncoder())


def room(n: int = 3000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A floor and a wall (2 m x 2 m) plus a red cube: [n, 3] points and colors."""
    g = torch.Generator().manual_seed(seed)
    uv = torch.rand(n, 2, generator=g) * 2.0
    points = torch.stack([uv[:, 0], uv[:, 1], torch.zeros(n)], 1)
    points[n // 2 :] = torch.stack([torch.zeros(n - n // 2), uv[n // 2 :, 0], uv[n // 2 :, 1]], 1)
    cube = torch.rand(n // 5, 3, generator=g) * 0.4 + torch.tensor([1.0, 1.0, 0.0])
    colors = torch.rand(n + n // 5, 3, generator=g) * 0.3
    colors[n:, 0] = 0.9
    return torch.cat([points, cube]), colors


# --- voxelisation --------------------------------------------------------------------------------------


def test_voxelize_means_and_bookkeeping():
    points, colors = room()
    vox = voxelize(points, colors, VOXEL)
    cells = grid_coords(points, VOXEL)
    assert torch.equal(vox.grid[vox.source_to_voxel], cells)  # every point maps to its own cell
    assert len({tuple(c) for c in vox.grid.tolist()}) == vox.points.shape[0]  # one voxel per cell
    for v in (0, 7, vox.points.shape[0] - 1):
        members = vox.source_to_voxel == v
        assert torch.allclose(vox.points[v], points[members].mean(0), atol=1e-5)
        assert torch.allclose(vox.colors[v], colors[members].mean(0), atol=1e-5)


def test_voxelize_cap_is_deterministic_and_maps_dropped_points_to_nearest_kept_voxel():
    points, colors = room()
    full = voxelize(points, colors, VOXEL)
    for method in ("fps", "random"):
        a = voxelize(points, colors, VOXEL, max_points=100, method=method, seed=3)
        b = voxelize(points, colors, VOXEL, max_points=100, method=method, seed=3)
        assert a.points.shape == (100, 3) and torch.equal(a.points, b.points)
        assert torch.equal(a.source_to_voxel, b.source_to_voxel)
        # the voxel of each source point is the kept voxel nearest to the point's full-resolution voxel
        own = full.points[full.source_to_voxel]
        nearest = torch.cdist(own, a.points, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values
        assert torch.allclose((own - a.points[a.source_to_voxel]).norm(dim=1), nearest, atol=1e-5)
    spread = torch.cdist(a.points, a.points).max()
    fps = voxelize(points, colors, VOXEL, max_points=100, method="fps")
    assert torch.cdist(fps.points, fps.points).max() >= spread - 1e-6  # fps covers the whole scene
    extra = torch.arange(points.shape[0], dtype=torch.float32).unsqueeze(1)
    with_extra = voxelize(points, colors, VOXEL, extra=extra)
    members = with_extra.source_to_voxel == 0
    assert torch.allclose(with_extra.extra[0], extra[members].mean(0))


def test_voxelize_rejects_bad_input():
    points, colors = room()
    with pytest.raises(ValueError, match="need at least 16"):
        voxelize(points[:5], colors[:5], VOXEL)
    with pytest.raises(ValueError, match="need at least 16"):
        voxelize(points, colors, voxel_size=100.0)
    with pytest.raises(ValueError, match="colors"):
        voxelize(points, colors[:10], VOXEL)
    with pytest.raises(ValueError, match="voxel_size"):
        voxelize(points, colors, 0.0)
    bad = points.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        voxelize(bad, colors, VOXEL)
    assert voxelize(points.numpy(), colors.numpy(), VOXEL).points.dtype == torch.float32


# --- serialisation -------------------------------------------------------------------------------------


def test_morton_code_interleaves_bits():
    grid = torch.randint(0, 1 << 16, (50, 3))
    expected = []
    for x, y, z in grid.tolist():
        code = 0
        for bit in range(16):
            code |= (
                ((x >> bit) & 1) << (3 * bit + 2)
                | ((y >> bit) & 1) << (3 * bit + 1)
                | ((z >> bit) & 1) << (3 * bit)
            )
        expected.append(code)
    assert morton_code(grid).tolist() == expected


def test_hilbert_curve_visits_face_neighbours_in_turn():
    grid = torch.tensor(list(itertools.product(range(8), repeat=3)))
    codes = hilbert_code(grid, bits=3)
    assert sorted(codes.tolist()) == list(range(512))
    ordered = grid[torch.argsort(codes)]
    assert ((ordered[1:] - ordered[:-1]).abs().sum(1) == 1).all()


def test_serialize_orders_are_permutations_with_inverse():
    grid = torch.randint(-50, 50, (300, 3))
    grid = torch.unique(grid, dim=0)
    perms = []
    for order in ORDERS:
        perm, inverse = serialize(grid, order)
        assert torch.equal(torch.sort(perm).values, torch.arange(grid.shape[0]))
        assert torch.equal(grid[perm][inverse], grid)
        perms.append(perm)
    assert not torch.equal(perms[0], perms[1]) and not torch.equal(perms[0], perms[2])
    with pytest.raises(ValueError, match="unknown serialisation order"):
        serialize(grid, "peano")


# --- encoder -------------------------------------------------------------------------------------------


def test_rotary_encoding_depends_only_on_relative_position():
    rotary = Rotary3D(head_dim=14)
    q, k = torch.randn(1, 1, 5, 14), torch.randn(1, 1, 5, 14)
    pos = torch.randn(1, 1, 5, 3) * 10
    shift = torch.tensor([3.0, -7.0, 2.5])

    def logits(p):
        cos, sin = rotary.angles(p)
        return rotary(q, cos, sin) @ rotary(k, cos, sin).transpose(-1, -2)

    assert torch.allclose(logits(pos), logits(pos + shift), atol=1e-4)
    assert not torch.allclose(logits(pos), logits(pos * 2), atol=1e-2)


def test_encoder_shapes_determinism_and_permutation_equivariance():
    config = tiny_config().encoder
    torch.manual_seed(0)
    encoder = PointEncoder(config).eval()
    points, colors = room()
    vox = voxelize(points, colors, VOXEL)
    out = encoder(vox.points, vox.colors, vox.grid, VOXEL)
    assert out.shape == (vox.points.shape[0], config.dec_channels[0])
    assert torch.equal(out, encoder(vox.points, vox.colors, vox.grid, VOXEL))
    perm = torch.randperm(vox.points.shape[0], generator=torch.Generator().manual_seed(1))
    shuffled = encoder(vox.points[perm], vox.colors[perm], vox.grid[perm], VOXEL)
    assert torch.allclose(shuffled, out[perm], atol=1e-4)
    with pytest.raises(ValueError, match="extra"):
        encoder(vox.points, vox.colors, vox.grid, VOXEL, extra=torch.zeros(vox.points.shape[0], 2))


def test_encoder_features_depend_on_color_and_on_other_points():
    torch.manual_seed(0)
    encoder = PointEncoder(tiny_config().encoder).eval()
    vox = voxelize(*room(), VOXEL)
    out = encoder(vox.points, vox.colors, vox.grid, VOXEL)
    recolored = vox.colors.clone()
    recolored[:10] = 1.0 - recolored[:10]
    changed = (encoder(vox.points, recolored, vox.grid, VOXEL) - out).abs().sum(1) > 1e-5
    assert changed[:10].all() and changed[10:].any()  # attention spreads the change to other points


# --- Gaussian head -------------------------------------------------------------------------------------


def test_gaussians_start_on_the_points_with_their_colors():
    model = tiny_model(gaussians_per_point=2, feature_dim=5)
    points, colors = room()
    scene = model.encode_scene(points, colors)
    g = scene.gaussians
    pv = scene.num_points
    assert len(g) == 2 * pv and g.features.shape == (2 * pv, 5)
    assert torch.equal(g.point_index, torch.arange(pv).repeat_interleave(2))
    assert (g.means - scene.points[g.point_index]).norm(dim=1).max() < 0.05 * VOXEL
    assert torch.allclose(g.scales, torch.full_like(g.scales, 0.7 * VOXEL), rtol=0.02)
    assert torch.allclose(g.opacities, torch.full_like(g.opacities, 0.9), atol=0.01)
    assert (g.colors - scene.colors[g.point_index]).abs().max() < 0.02
    assert torch.allclose(g.quats.norm(dim=1), torch.ones(2 * pv), atol=1e-5)
    assert g.quats[:, 0].min() > 0.99  # near identity rotation, wxyz
    logits = torch.randn(3, pv)
    assert torch.equal(g.take(logits), logits[:, g.point_index])


# --- decoder and the assembled model -------------------------------------------------------------------


def test_ground_shapes_and_deep_supervision():
    model = tiny_model().eval()  # no token noise: the two calls below must see the same text
    scene = model.encode_scene(*room())
    text = model.encode_text(["the red cube", "a wall near the floor on the left"])
    out = model.ground(scene, text)
    b, q, pv, t = 2, 4, scene.num_points, text.tokens.shape[1]
    assert out.mask_logits.shape == (b, q, pv)
    assert out.token_logits.shape == (b, q, t)
    assert out.scores.shape == (b, q) and out.boxes.shape == (b, q, 6)
    assert len(out.aux) == 2 and all(a["mask_logits"].shape == (b, q, pv) for a in out.aux)
    assert torch.equal(out.aux[-1]["mask_logits"], out.mask_logits)
    final_only = model.ground(scene, text, all_layers=False)
    assert len(final_only.aux) == 1 and torch.allclose(final_only.mask_logits, out.mask_logits, atol=1e-6)
    assert (out.token_logits[0, :, 3:] == -1e4).all() and (out.token_logits[1] > -1e4).all()
    assert (out.boxes[..., 3:] >= out.boxes[..., :3]).all()
    assert scene.features.shape == (pv, 16) and scene.source_to_voxel.shape == (3600,)


def test_same_seed_same_outputs():
    outputs = []
    for _ in range(2):
        model = tiny_model(seed=7)
        scene = model.encode_scene(*room())
        outputs.append(model.ground(scene, model.encode_text(["the red cube"])).mask_logits)
    assert torch.equal(outputs[0], outputs[1])


def test_gradient_reaches_every_trainable_parameter():
    model = tiny_model(feature_dim=3).train()
    with torch.no_grad():  # the zero-initialised relational terms start neutral: open them
        for param in model.parameters():
            if not param.any():
                param.normal_(std=0.1)
    scene = model.encode_scene(*room())
    out = model.ground(scene, model.encode_text(["the red cube", "the floor"]))
    g = scene.gaussians
    loss = sum(t.float().sin().sum() for t in (g.means, g.quats, g.scales, g.opacities, g.colors, g.features))
    loss = loss + sum((a["mask_logits"].sin().sum() + a["scores"].sum() + a["boxes"].sum()) for a in out.aux)
    loss = loss + out.token_logits.clamp_min(-10).sum()
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name


def test_mask_logits_respond_to_the_text():
    model = tiny_model()
    scene = model.encode_scene(*room())
    out = model.ground(scene, model.encode_text(["the red cube", "the white wall"]))
    assert (out.mask_logits[0] - out.mask_logits[1]).abs().mean() > 1e-3
    assert (out.scores[0] - out.scores[1]).abs().max() > 1e-4


def test_token_noise_perturbs_training_only_and_scales_with_each_token():
    model = tiny_model()
    model.decoder.config.token_noise = 0.5
    scene = model.encode_scene(*room())
    text = model.encode_text(["the red cube", "the floor"])
    torch.manual_seed(0)
    noisy = model.decoder.noisy_text(text)
    added = (noisy.tokens - text.tokens).norm(dim=-1)[text.mask]
    ratio = added / text.tokens.norm(dim=-1)[text.mask]
    assert 0.3 < float(ratio.mean()) < 0.7  # expected norm: half the token's
    assert torch.equal(noisy.tokens[~text.mask], text.tokens[~text.mask])  # padding stays zero
    assert torch.equal(noisy.pooled, text.pooled)
    model.train()
    first, second = (model.ground(scene, text).mask_logits for _ in range(2))
    assert (first - second).abs().max() > 1e-4
    model.eval()
    first, second = (model.ground(scene, text).mask_logits for _ in range(2))
    assert torch.equal(first, second)
    model.decoder.config.token_noise = 0.0
    assert torch.equal(model.ground(scene, text).mask_logits, first)


def test_text_encoder_width_must_match_config():
    config = tiny_config()
    with pytest.raises(ValueError, match="text_dim"):
        LiftGS(config, text_encoder=HashTextEncoder(dim=8))


def test_predict_picks_best_query_and_boxes_its_mask():
    model = tiny_model()
    scene = model.encode_scene(*room()).detach()
    out = model.ground(scene, model.encode_text(["the red cube on the floor"]))
    pred = model.predict(scene, ["the red cube on the floor"])[0]
    q = int(out.scores[0].argmax())
    assert pred.query_index == q
    assert torch.allclose(pred.point_probs, torch.sigmoid(out.mask_logits[0, q]), atol=1e-6)
    assert pred.score == pytest.approx(float(torch.sigmoid(out.scores[0, q].detach())), abs=1e-6)
    assert pred.token_scores.shape == (6,) and pred.token_strings == [
        "the",
        "red",
        "cube",
        "on",
        "the",
        "floor",
    ]
    expected, below_threshold = answer_voxels(
        scene.points, pred.point_probs, link=link_distance(scene.points, scene.voxel_size)
    )
    assert torch.equal(pred.mask, expected) and pred.below_threshold == below_threshold
    assert torch.allclose(pred.box, mask_box(scene.points, pred.mask))


def test_grounded_voxels_keep_one_connected_part_and_no_lone_stray_voxel():
    # a 3-voxel object at the origin, a fainter 2-voxel blob 3 m away, and a lone confident stray voxel
    xyz = torch.tensor(
        [[0.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [3.0, 0, 0], [3.1, 0, 0], [-4.0, 2, 1], [1.0, 1, 1]]
    )
    probs = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.6, 0.99, 0.1])
    grounded = grounded_voxels(xyz, probs, link=0.15)
    assert grounded.tolist() == [True, True, True, False, False, False, False]
    assert mask_box(xyz, grounded).tolist() == pytest.approx([0, 0, 0, 0.2, 0, 0])
    # a larger link joins the blob 3 m away only when it is closer than the link
    assert grounded_voxels(xyz, probs, link=3.5).tolist() == [True] * 5 + [False, False]
    # without the mass floor the stray voxel, the most confident part, would win
    assert grounded_voxels(xyz, probs, link=0.15, mass_floor=0.0).tolist() == [False] * 5 + [True, False]


def test_the_most_confident_part_wins_over_a_bigger_fainter_look_alike():
    """A 0.6 m target painted at 0.9 (5.4 summed) and a 1 m look-alike 2 m away at 0.7 (7.0): the target holds
    more than ``MASS_FLOOR`` of the look-alike's probability and is more confident, so it wins; the heaviest
    part (mass floor 1) would be the look-alike, and a 0.3 m one at 0.95 holds too little to compete."""
    line = torch.stack([torch.arange(10) * 0.1, torch.zeros(10), torch.zeros(10)], 1)
    look_alike = line + torch.tensor([0.0, 2.0, 0.0])
    xyz = torch.cat([line[:6], look_alike])
    probs = torch.cat([torch.full((6,), 0.9), torch.full((10,), 0.7)])
    assert grounded_voxels(xyz, probs, link=0.15).tolist() == [True] * 6 + [False] * 10
    assert grounded_voxels(xyz, probs, link=0.15, mass_floor=1.0).tolist() == [False] * 6 + [True] * 10
    small = torch.cat([torch.full((3,), 0.95), torch.zeros(3), torch.full((10,), 0.7)])
    assert grounded_voxels(xyz, small, link=0.15).tolist() == [False] * 6 + [True] * 10


def test_the_link_follows_the_clouds_spacing_so_a_subsampled_object_stays_whole():
    """A 1 m table top sampled every 0.15 m on a 0.1 m voxel grid (as farthest-point subsampling leaves a
    crowded room), half its samples above the threshold in a checkerboard: two voxel edges would keep one
    sample (no neighbours on the diagonal), the cloud's own spacing keeps the table."""
    grid = torch.arange(7) * 0.15
    xyz = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    xyz = torch.cat([xyz, torch.full((49, 1), 0.7)], 1)
    checker = ((torch.arange(7)[:, None] + torch.arange(7)) % 2 == 0).flatten()
    probs = torch.where(checker, 0.9, 0.1)  # the others below the growth threshold
    assert link_distance(xyz, voxel_size=0.1) == pytest.approx(0.3)
    assert link_distance(xyz[:1], voxel_size=0.1) == pytest.approx(0.2)  # one voxel: the voxel edge
    assert grounded_voxels(xyz, probs, link=0.2).sum() == 1
    whole = grounded_voxels(xyz, probs, link=link_distance(xyz, voxel_size=0.1))
    assert torch.equal(whole, checker)
    assert mask_box(xyz, whole).tolist() == pytest.approx([0, 0, 0.7, 0.9, 0.9, 0.7])


def test_the_grounded_part_grows_into_its_connected_less_probable_voxels():
    """A 1.5 m desk along x whose far end a relation pushed below the threshold (0.9 falling to 0.25), a
    look-alike 2 m away at 0.3 and a 0.1 gap voxel: the grown part is the whole desk, and only the desk."""
    desk_x = torch.arange(16) * 0.1
    desk = torch.stack([desk_x, torch.zeros(16), torch.full((16,), 0.75)], 1)
    rival = desk + torch.tensor([0.0, 2.0, 0.0])
    gap = torch.tensor([[0.0, 0.1, 0.75]])
    xyz = torch.cat([desk, rival, gap])
    probs = torch.cat([torch.linspace(0.9, 0.25, 16), torch.full((16,), 0.3), torch.tensor([0.1])])
    grown = grounded_voxels(xyz, probs, link=0.15)
    assert grown.tolist() == [True] * 16 + [False] * 17
    assert mask_box(xyz, grown).tolist() == pytest.approx([0, 0, 0.75, 1.5, 0, 0.75])
    thresholded = grounded_voxels(xyz, probs, link=0.15, grow_fraction=1.0)  # the threshold alone
    assert thresholded.tolist() == [True] * 10 + [False] * 23  # 0.9 ... 0.51: the desk's near end
    # the growth threshold scales with the threshold: at 0.8 voxels down to 0.32 join
    assert grounded_voxels(xyz, probs, threshold=0.8, link=0.15).sum() == 14


def test_nothing_above_threshold_grounds_nothing_but_the_answer_falls_back_below_it():
    """A faint 3-voxel object (0.3-0.35), a lone voxel at 0.4 and background at 0.01: nothing reaches 0.5,
    so the answer is grounded at ``EMPTY_FALLBACK`` x 0.4 — the object, since the lone voxel holds too little
    probability to compete."""
    xyz = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [5, 5, 5], [-1, 0, 2], [2, 2, 0]])
    low = torch.tensor([0.3, 0.35, 0.3, 0.4, 0.01, 0.01])
    assert not grounded_voxels(xyz, low, link=0.15).any()
    answer, below_threshold = answer_voxels(xyz, low, link=0.15)
    assert below_threshold and answer.tolist() == [True] * 3 + [False] * 3
    assert mask_box(xyz, answer).tolist() == pytest.approx([0, 0, 0, 0.2, 0, 0])
    reached, below_threshold = answer_voxels(xyz, low, threshold=0.3, link=0.15)
    assert not below_threshold and torch.equal(reached, grounded_voxels(xyz, low, 0.3, link=0.15))
    with pytest.raises(ValueError, match="empty"):
        mask_box(xyz, torch.zeros(6, dtype=torch.bool))


def test_encode_scene_rejects_tiny_scenes_and_wrong_extra():
    model = tiny_model()
    points, colors = room()
    with pytest.raises(ValueError, match="voxel"):
        model.encode_scene(points[:3], colors[:3])
    with pytest.raises(ValueError, match="reads no per-point features"):
        model.encode_scene(points, colors, extra=np.zeros((points.shape[0], 2), np.float32))


def test_encode_scene_with_extra_features():
    config = tiny_config()
    config.encoder.extra_channels = 2
    torch.manual_seed(0)
    model = LiftGS(config, text_encoder=HashTextEncoder())
    points, colors = room()
    extra = torch.randn(points.shape[0], 2)
    a = model.encode_scene(points, colors, extra=extra)
    b = model.encode_scene(points, colors, extra=extra * 2)
    assert not torch.allclose(a.features, b.features)
    with pytest.raises(ValueError, match="lifted features per point and the scene has none"):
        model.encode_scene(points, colors)
    with pytest.raises(ValueError, match="extra"):
        model.encode_scene(points, colors, extra=extra[:, :1])


def test_text_features_cache_and_device_move():
    model = tiny_model()
    encoder = model.text_encoder
    first = model.encode_text(["the red cube", "the floor"])
    calls = encoder.calls
    again = model.encode_text(["the floor", "the red cube"])
    assert encoder.calls == calls
    assert torch.equal(again.tokens[0, :2], first.tokens[1, :2])
    assert isinstance(first.to("cpu"), TextFeatures)


def test_the_text_encoder_follows_the_networks_device():
    model = tiny_model()
    encoder = model.text_encoder
    model.encode_text(["the red cube"])
    model.to("meta")  # stands in for "cuda" on a machine without a GPU
    assert model.text_encoder.device == torch.device("meta")
    assert encoder._cache == {}  # features on the old device are dropped


def test_padding_does_not_change_a_texts_outputs():
    model = tiny_model().eval()
    with torch.no_grad():
        scene = model.encode_scene(*room())
        alone = model.ground(scene, model.encode_text(["the red cube"]))
        batched = model.ground(
            scene, model.encode_text(["the red cube", "a wall near the floor on the left side"])
        )
    assert torch.allclose(batched.mask_logits[0], alone.mask_logits[0], atol=1e-4)
    assert torch.allclose(batched.scores[0], alone.scores[0], atol=1e-4)
    assert torch.allclose(batched.token_logits[0, :, :3], alone.token_logits[0], atol=1e-4)


def test_box_head_starts_from_the_masked_points_extent():
    g = torch.Generator().manual_seed(0)
    inside = torch.rand(2000, 3, generator=g) + torch.tensor([1.0, 2.0, 0.0])  # uniform in a 1 m cube
    xyz = torch.cat([inside, torch.rand(500, 3, generator=g) * 5 - 6])
    logits = torch.full((1, 1, 2500), -30.0)
    logits[..., :2000] = 30.0
    boxes = GroundingHeads._boxes(torch.zeros(1, 1, 6), logits, xyz)
    assert torch.allclose(boxes[0, 0], torch.tensor([1.0, 2.0, 0.0, 2.0, 3.0, 1.0]), atol=0.05)


def test_pooling_hierarchy_bookkeeping_and_alternating_orders():
    vox = voxelize(*room(), VOXEL)
    levels = build_levels(vox.grid, vox.points, VOXEL, 3, ORDERS)
    for fine, coarse in zip(levels[:-1], levels[1:], strict=True):
        assert torch.equal(coarse.grid[fine.parent], torch.div(fine.grid, 2, rounding_mode="floor"))
        assert coarse.grid.shape[0] < fine.grid.shape[0]
        assert torch.allclose(coarse.pos[fine.parent], fine.pos / 2, atol=1.0)  # centroid inside the cell
    assert levels[-1].parent is None
    assert not torch.equal(levels[0].order(0)[0], levels[0].order(1)[0])
    assert levels[0].order(0) is levels[0].order(len(ORDERS))  # cycles through the curves, computed once


# --- lifted affinity -----------------------------------------------------------------------------------


def lifted_model(extra_channels: int = 8) -> LiftGS:
    config = tiny_config()
    config.encoder.extra_channels = extra_channels
    config.decoder.lifted_affinity = True
    torch.manual_seed(0)
    return LiftGS(config, text_encoder=HashTextEncoder())


def lifted_room(model: LiftGS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``room()`` whose cube points carry the projected embedding of the word "cube" as lifted feature and
    the other points that of "floor" (as the stand-in labeller lifts names): points, colors, extra, and
    the [P] bool cube mask."""
    points, colors = room()
    cube = torch.arange(points.shape[0]) >= 3000
    words = model.encode_text(["cube", "floor"]).tokens[:, 0]  # [2, Dt]
    lifted = words @ feature_projection(words.shape[1], model.config.encoder.extra_channels, 0)
    return points, colors, torch.where(cube[:, None], lifted[0], lifted[1]), cube


def test_lifted_affinity_scores_points_by_the_words_a_query_aligns_with():
    encoder = HashTextEncoder()
    affinity = LiftedAffinity(text_dim=encoder.dim, lifted_dim=8, projection_seed=0)
    tokens = encoder.encode(["the cube"]).tokens  # [1, 2, Dt]
    lifted = F.normalize(tokens[0] @ affinity.projection, dim=-1)  # point 0 lifted "the", point 1 "cube"
    on_cube = torch.tensor([[[-20.0, 20.0]]]).softmax(-1)  # [B, Q, T] weights from token alignment logits
    with torch.no_grad():
        towards_cube = affinity(on_cube, tokens, lifted)[0, 0]
        towards_the = affinity(on_cube.flip(-1), tokens, lifted)[0, 0]
    assert towards_cube[1] > towards_cube[0] and towards_the[0] > towards_the[1]
    expected = AFFINITY_SCALE_INIT * (1.0 - AFFINITY_OFFSET_INIT)  # cosine 1 at the initial scale/offset
    assert towards_cube[1].item() == pytest.approx(expected, abs=1e-3)


def test_lifted_affinity_lifts_the_named_objects_mask_logits():
    model = lifted_model().eval()
    points, colors, extra, cube = lifted_room(model)
    with torch.no_grad():
        scene = model.encode_scene(points, colors, extra)
        text = model.encode_text(["cube", "floor"])
        with_prior = model.ground(scene, text).mask_logits
        affinity, model.decoder.heads.affinity = model.decoder.heads.affinity, None
        without = model.ground(scene, text).mask_logits
        model.decoder.heads.affinity = affinity
    norms = scene.decoder_points.lifted.norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    voxel_cube = torch.zeros(scene.num_points, dtype=torch.bool)
    voxel_cube[scene.source_to_voxel[cube]] = True
    prior = (with_prior - without).mean(1)  # [2 texts, Pv], averaged over queries
    assert prior[0, voxel_cube].mean() > prior[0, ~voxel_cube].mean() + 1.0
    assert prior[1, ~voxel_cube].mean() > prior[1, voxel_cube].mean() + 1.0


def test_lifted_affinity_trains_the_token_alignment_through_the_masks():
    model = lifted_model().train()
    points, colors, extra, _ = lifted_room(model)
    out = model.ground(model.encode_scene(points, colors, extra), model.encode_text(["the red cube"]))
    out.mask_logits.sigmoid().sum().backward()  # a mask loss only: no token loss
    heads = model.decoder.heads
    assert heads.affinity.log_scale.grad.abs() > 0 and heads.affinity.offset.grad.abs() > 0
    assert heads.token_align.weight.grad.abs().sum() > 0


def test_lifted_affinity_needs_lifted_features():
    with pytest.raises(ValueError, match="lifted_affinity needs lifted features"):
        lifted_model(extra_channels=0)
    model = lifted_model()
    points, _ = room()
    with pytest.raises(ValueError, match="no lifted point features"):
        model.decoder.prepare(torch.randn(10, model.encoder.out_channels), points[:10])
