"""Tests of ``liftgs.render.rasterize``: gsplat's maths and conventions, gradients, edge cases, bad input.

All on CPU at tiny sizes. References: gsplat's own pure-torch projection and tile intersection, a literal
per-pixel loop of gsplat's compositing kernel, and the package's dense all-pairs backend.
"""

from __future__ import annotations

import math
import sys

import pytest
import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _isect_tiles, _quat_scale_to_covar_preci

from liftgs.render import project_gaussians, rasterize
from liftgs.render.binning import _ellipse_meets_block, tile_rects

DIFFERENTIABLE = ("means", "quats", "scales", "opacities", "colors")


def make_scene(
    n: int = 40,
    cameras: int = 2,
    channels: int = 3,
    width: int = 37,
    height: int = 29,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    opacity: tuple[float, float] = (0.2, 0.95),
    per_camera_colors: bool = False,
) -> dict:
    """Gaussians in front of C cameras that look down +z from slightly different positions."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, dtype=dtype)

    means = torch.cat([(rand(n, 2) - 0.5) * 2.0, 2.0 + 2.0 * rand(n, 1)], dim=1)
    viewmats = torch.eye(4, dtype=dtype).repeat(cameras, 1, 1)
    viewmats[:, 0, 3] = torch.linspace(-0.3, 0.3, cameras, dtype=dtype)
    viewmats[:, 1, 3] = torch.linspace(0.1, -0.1, cameras, dtype=dtype)
    Ks = torch.tensor([[30.0, 0, width / 2], [0, 32.0, height / 2], [0, 0, 1]], dtype=dtype).repeat(
        cameras, 1, 1
    )
    colors = rand(cameras, n, channels) if per_camera_colors else rand(n, channels)
    return {
        "means": means,
        "quats": torch.randn(n, 4, generator=g, dtype=dtype),
        "scales": 0.02 + 0.12 * rand(n, 3),
        "opacities": opacity[0] + (opacity[1] - opacity[0]) * rand(n),
        "colors": colors,
        "viewmats": viewmats,
        "Ks": Ks,
        "width": width,
        "height": height,
    }


def render_with_grads(scene: dict, backend: str, weights: tuple[torch.Tensor, torch.Tensor] | None, **kwargs):
    """Renders, backpropagates ``sum(colors * w) + sum(alphas * wa)`` and returns outputs and gradients."""
    inputs = {k: v.detach().clone().requires_grad_(k in DIFFERENTIABLE) if torch.is_tensor(v) else v
              for k, v in scene.items()}  # fmt: skip
    colors, alphas, meta = rasterize(**inputs, backend=backend, **kwargs)
    if weights is None:
        g = torch.Generator().manual_seed(1)
        weights = (torch.randn(colors.shape, generator=g, dtype=colors.dtype),
                   torch.randn(alphas.shape, generator=g, dtype=colors.dtype))  # fmt: skip
    ((colors * weights[0]).sum() + (alphas * weights[1]).sum()).backward()
    grads = {k: inputs[k].grad for k in DIFFERENTIABLE}
    return colors.detach(), alphas.detach(), grads, meta, weights


def assert_tile_matches_dense(scene: dict, atol: float = 2e-5, **kwargs) -> dict:
    colors, alphas, grads, meta, weights = render_with_grads(scene, "torch", None, **kwargs)
    colors_ref, alphas_ref, grads_ref, _, _ = render_with_grads(scene, "dense", weights, **kwargs)
    torch.testing.assert_close(colors, colors_ref, atol=atol, rtol=1e-4)
    torch.testing.assert_close(alphas, alphas_ref, atol=atol, rtol=1e-4)
    for name in DIFFERENTIABLE:
        if grads_ref[name] is None:  # e.g. colors in depth-only modes
            assert grads[name] is None or not grads[name].any()
            continue
        scale = grads_ref[name].abs().max().clamp(min=1.0)
        torch.testing.assert_close(grads[name] / scale, grads_ref[name] / scale, atol=2e-4, rtol=1e-3)
    return meta


def literal_gsplat_kernel(means2d, conics, opacities, colors, radii, depths, width, height, tile_size):
    """gsplat's per-pixel compositing loop, one pixel and one Gaussian at a time (one camera).

    Returns ``(colors [H, W, D], alphas [H, W, 1], number of pixels that stopped early)``."""
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    lo, hi = tile_rects(means2d[None], radii[None], tile_size, tiles_x, tiles_y)
    order = sorted(range(len(depths)), key=lambda i: (float(depths[i]), i))
    image = torch.zeros(height, width, colors.shape[-1], dtype=torch.float64)
    alpha_image = torch.zeros(height, width, 1, dtype=torch.float64)
    stops = 0
    for i in range(height):
        for j in range(width):
            px, py, transmittance = j + 0.5, i + 0.5, 1.0
            for n in order:
                tx, ty = j // tile_size, i // tile_size
                if radii[n] <= 0 or not (lo[0, n, 0] <= tx < hi[0, n, 0] and lo[0, n, 1] <= ty < hi[0, n, 1]):
                    continue
                dx, dy = float(means2d[n, 0]) - px, float(means2d[n, 1]) - py
                a, b, c = (float(v) for v in conics[n])
                sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                alpha = min(0.999, float(opacities[n]) * math.exp(-sigma))
                if sigma < 0 or alpha < 1 / 255:
                    continue
                next_t = transmittance * (1 - alpha)
                if next_t <= 1e-4:
                    stops += 1
                    break
                image[i, j] += alpha * transmittance * colors[n].double()
                transmittance = next_t
            alpha_image[i, j] = 1 - transmittance
    return image, alpha_image, stops


# --------------------------------------------------------------------------------------- gsplat parity


def test_projection_matches_gsplat_torch_reference():
    scene = make_scene(n=200, cameras=3, dtype=torch.float64)
    means = scene["means"].clone()
    means[:10, 2] = -means[:10, 2]  # behind the camera
    means[10:20, :2] *= 40.0  # far outside the image
    scales = scene["scales"].clone()
    scales[20:25] = 5.0  # huge
    scales[25:30] = 1e-6  # tiny
    args = (scene["viewmats"], scene["Ks"], scene["width"], scene["height"])
    proj = project_gaussians(means, scene["quats"], scales, *args)
    covars, _ = _quat_scale_to_covar_preci(scene["quats"], scales, compute_preci=False)
    radii, means2d, depths, conics, _ = _fully_fused_projection(means, covars, *args)

    assert torch.equal(proj.radii, radii)
    valid = radii > 0
    assert 100 < int(valid.sum()) < radii.numel()
    assert not valid[:, :20].any()
    torch.testing.assert_close(proj.means2d[valid], means2d[valid])
    torch.testing.assert_close(proj.conics[valid], conics[valid])
    torch.testing.assert_close(proj.depths, depths)


def test_tile_rule_matches_gsplat_isect_tiles():
    scene = make_scene(n=25, cameras=1, width=70, height=50, dtype=torch.float32)
    proj = project_gaussians(scene["means"], scene["quats"], scene["scales"] * 3, scene["viewmats"],
                             scene["Ks"], 70, 50)  # fmt: skip
    tiles_x, tiles_y = math.ceil(70 / 16), math.ceil(50 / 16)
    _, isect_ids, flatten_ids = _isect_tiles(proj.means2d, proj.radii, proj.depths, 16, tiles_x, tiles_y)
    theirs = {(int(g), int(t)) for g, t in zip(flatten_ids, (isect_ids >> 32).tolist(), strict=True)}
    lo, hi = tile_rects(proj.means2d, proj.radii, 16, tiles_x, tiles_y)
    ours = {
        (n, ty * tiles_x + tx)
        for n in range(25)
        if proj.radii[0, n] > 0
        for ty in range(int(lo[0, n, 1]), int(hi[0, n, 1]))
        for tx in range(int(lo[0, n, 0]), int(hi[0, n, 0]))
    }
    assert len(ours) > 25 and ours == theirs


@pytest.mark.parametrize("opacity", [(0.2, 0.95), (0.9, 1.0)])
def test_backends_match_literal_gsplat_kernel(opacity):
    """Includes (0.9, 1.0): stacked opaque Gaussians exercise the 0.999 clamp and the 1e-4 early stop."""
    scene = make_scene(n=30, cameras=1, width=14, height=11, dtype=torch.float64, opacity=opacity)
    scene["scales"] = scene["scales"] * 4
    with torch.no_grad():
        proj = project_gaussians(scene["means"], scene["quats"], scene["scales"], scene["viewmats"],
                                 scene["Ks"], 14, 11)  # fmt: skip
        expected, expected_alpha, stops = literal_gsplat_kernel(
            proj.means2d[0], proj.conics[0], scene["opacities"], scene["colors"], proj.radii[0],
            proj.depths[0], 14, 11, tile_size=4,
        )  # fmt: skip
        assert (stops > 10) == (opacity[0] > 0.5)
        for backend in ("torch", "dense"):
            colors, alphas, _ = rasterize(**scene, tile_size=4, backend=backend)
            torch.testing.assert_close(colors[0], expected, atol=1e-10, rtol=1e-8)
            torch.testing.assert_close(alphas[0], expected_alpha, atol=1e-10, rtol=1e-8)


def test_ellipse_block_test_is_exact_on_pixel_centres():
    """The fine culling never drops a block with a pixel centre inside the ellipse, and drops the others
    (up to the continuous-vs-discrete gap) - checked against brute force over the 8 x 8 pixel centres."""
    g = torch.Generator().manual_seed(0)
    m = 4000
    angle = torch.rand(m, generator=g, dtype=torch.float64) * math.pi
    var = 0.3 + 20 * torch.rand(m, 2, generator=g, dtype=torch.float64)
    cos, sin = angle.cos(), angle.sin()
    cov = torch.stack([var[:, 0] * cos**2 + var[:, 1] * sin**2, (var[:, 0] - var[:, 1]) * cos * sin,
                       var[:, 0] * sin**2 + var[:, 1] * cos**2], -1)  # fmt: skip
    det = cov[:, 0] * cov[:, 2] - cov[:, 1] ** 2
    a, b, c = cov[:, 2] / det, -cov[:, 1] / det, cov[:, 0] / det
    level = torch.full((m,), 2 * math.log(255 * 0.8), dtype=torch.float64)
    corner = (torch.rand(m, 2, generator=g, dtype=torch.float64) - 0.5) * 40  # block corner - mean
    meets = _ellipse_meets_block(torch.stack([a, b, c, level, -b / c, -b / a], -1), corner, 8)

    offsets = torch.arange(8, dtype=torch.float64)
    dx = corner[:, 0, None, None] + offsets[None, None, :]
    dy = corner[:, 1, None, None] + offsets[None, :, None]
    quad = a[:, None, None] * dx**2 + 2 * b[:, None, None] * dx * dy + c[:, None, None] * dy**2
    inside = (quad <= level[:, None, None]).flatten(1).any(1)
    assert not (inside & ~meets).any()  # conservative
    assert 0.2 < inside.double().mean() < 0.8 and (meets & ~inside).sum() < 0.1 * (~inside).sum()


# --------------------------------------------------------------------------------- tile == dense


@pytest.mark.parametrize("channels", [1, 3, 35])
def test_tile_backend_matches_dense_reference(channels):
    scene = make_scene(n=60, cameras=2, channels=channels, per_camera_colors=channels == 35)
    backgrounds = torch.rand(2, channels, generator=torch.Generator().manual_seed(3))
    meta = assert_tile_matches_dense(scene, backgrounds=backgrounds)
    assert meta["backend"] == "torch" and meta["n_isects"] > 0
    assert (meta["radii"] > 0).sum() > 60


@pytest.mark.parametrize("opacity", [(0.9, 1.0), (0.999, 1.0)])
def test_tile_backend_matches_dense_when_saturated(opacity):
    """Many opaque layers: gradients through the early stop and the alpha clamp."""
    scene = make_scene(n=80, cameras=1, opacity=opacity)
    scene["scales"] = scene["scales"] * 3
    assert_tile_matches_dense(scene)


@pytest.mark.parametrize("tile_size", [4, 16, 24])
def test_tile_backend_matches_dense_for_tile_sizes(tile_size):
    assert_tile_matches_dense(make_scene(n=50, cameras=1, width=41, height=23), tile_size=tile_size)


@pytest.mark.parametrize("render_mode", ["D", "ED", "RGB+D", "RGB+ED"])
def test_depth_modes_match_dense(render_mode):
    scene = make_scene(n=50, cameras=2)
    backgrounds = torch.ones(2, 3)
    meta = assert_tile_matches_dense(scene, render_mode=render_mode, backgrounds=backgrounds)
    colors, alphas, _ = rasterize(**scene, render_mode=render_mode, backgrounds=backgrounds)
    assert colors.shape[-1] == (1 if render_mode in ("D", "ED") else 4)
    depth = colors[..., -1:]
    accumulated, _, _ = rasterize(**scene, render_mode="D")  # zero background for depth
    if render_mode.endswith("ED"):
        torch.testing.assert_close(depth, accumulated / alphas.clamp(min=1e-10))
        covered = alphas[..., 0] > 0.5
        near, far = meta["depths"][meta["radii"] > 0].aminmax()
        assert ((depth[covered] >= near - 1e-4) & (depth[covered] <= far + 1e-4)).all()
    else:
        torch.testing.assert_close(depth, accumulated)


def test_flat_opaque_wall_renders_its_depth_and_color():
    """A dense grid of opaque flat Gaussians at z = 2: RGB+ED gives the wall color and depth 2."""
    xs = torch.linspace(-2.0, 2.0, 50)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    n = grid.shape[0]
    colors, alphas, _ = rasterize(
        means=torch.cat([grid, torch.full((n, 1), 2.0)], 1),
        quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
        scales=torch.tensor([[0.08, 0.08, 1e-4]]).repeat(n, 1),
        opacities=torch.full((n,), 0.9),
        colors=torch.tensor([[0.2, 0.5, 0.8]]).repeat(n, 1),
        viewmats=torch.eye(4)[None],
        Ks=torch.tensor([[[20.0, 0, 16], [0, 20.0, 16], [0, 0, 1]]]),
        width=32,
        height=32,
        render_mode="RGB+ED",
        backgrounds=torch.tensor([[1.0, 0.0, 0.0]]),
    )
    assert alphas.min() > 0.999
    torch.testing.assert_close(
        colors[0, ..., :3], torch.tensor([0.2, 0.5, 0.8]).expand(32, 32, 3), atol=2e-3, rtol=0
    )
    torch.testing.assert_close(colors[0, ..., 3], torch.full((32, 32), 2.0), atol=1e-3, rtol=0)


# ------------------------------------------------------------------------------------- gradients


def _gradcheck_scene(opacity: tuple[float, float]) -> dict:
    scene = make_scene(n=5, cameras=2, channels=2, width=12, height=10, dtype=torch.float64, opacity=opacity)
    scene["means"][:, 2] = 2.5 + 0.1 * torch.arange(5, dtype=torch.float64)
    scene["means"][:, :2] *= 0.02
    scene["scales"] = 0.3 + 0.1 * scene["scales"]
    return scene


@pytest.mark.parametrize("opacity", [(0.3, 0.8), (0.95, 0.99)])
def test_gradcheck_float64_all_differentiable_inputs(opacity):
    """(0.95, 0.99): five stacked near-opaque layers, so pixels stop early inside the checked region."""
    scene = _gradcheck_scene(opacity)
    backgrounds = torch.tensor([[0.3, 0.6], [0.9, 0.1]], dtype=torch.float64, requires_grad=True)
    inputs = tuple(scene[k].clone().requires_grad_() for k in DIFFERENTIABLE)

    def render(means, quats, scales, opacities, colors, backgrounds):
        fixed = {k: v for k, v in scene.items() if k not in DIFFERENTIABLE}
        colors_out, alphas, _ = rasterize(
            means, quats, scales, opacities, colors, **fixed, tile_size=4, render_mode="RGB+ED",
            backgrounds=backgrounds, backend="torch",
        )  # fmt: skip
        return colors_out, alphas

    with torch.no_grad():
        proj = project_gaussians(*inputs[:3], scene["viewmats"][:1], scene["Ks"][:1], 12, 10)
        stops = literal_gsplat_kernel(proj.means2d[0], proj.conics[0], inputs[3], inputs[4], proj.radii[0],
                                      proj.depths[0], 12, 10, tile_size=4)[2]  # fmt: skip
    assert (stops > 0) == (opacity[0] > 0.9)
    assert torch.autograd.gradcheck(
        render, (*inputs, backgrounds), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True
    )


def test_backward_keeps_no_pixels_by_gaussians_tensor():
    """Everything autograd saves is O(N) or O(pixels), never O(N x pixels)."""
    scene = make_scene(n=400, cameras=1, width=64, height=64)
    sizes = []

    def pack(tensor):
        sizes.append(tensor.numel())
        return tensor

    inputs = {k: v.requires_grad_() if k in DIFFERENTIABLE else v for k, v in scene.items()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        colors, alphas, _ = rasterize(**inputs, backend="torch")
    (colors.sum() + alphas.sum()).backward()
    assert max(sizes) <= 64 * 64 * 3 and inputs["means"].grad.abs().sum() > 0


# ------------------------------------------------------------------------------------ edge cases


def test_several_cameras_equal_separate_calls():
    scene = make_scene(n=50, cameras=3, per_camera_colors=True)
    together, alphas, _ = rasterize(**scene)
    for c in range(3):
        single = dict(scene, viewmats=scene["viewmats"][c : c + 1], Ks=scene["Ks"][c : c + 1],
                      colors=scene["colors"][c : c + 1])  # fmt: skip
        colors_c, alphas_c, _ = rasterize(**single)
        torch.testing.assert_close(together[c : c + 1], colors_c)
        torch.testing.assert_close(alphas[c : c + 1], alphas_c)


def test_culled_gaussians_render_nothing_and_get_zero_finite_gradients():
    scene = make_scene(n=4, cameras=1)
    scene["means"] = torch.tensor([[0.0, 0, -2], [0, 0, 0.005], [50, 0, 2], [0, 0, 1e11]])
    scene["opacities"] = torch.ones(4)
    colors, alphas, grads, meta, _ = render_with_grads(scene, "torch", None, far_plane=1e10)
    assert (meta["radii"] == 0).all()
    assert not colors.any() and not alphas.any()
    for name in DIFFERENTIABLE:
        assert torch.isfinite(grads[name]).all() and not grads[name].any()


def test_huge_and_tiny_scales_match_dense():
    scene = make_scene(n=30, cameras=2)
    scene["scales"][:3] = 3.0
    scene["scales"][3:10] = 1e-7
    meta = assert_tile_matches_dense(scene)
    assert (meta["radii"][:, :3] > 20).all()


def test_empty_gaussian_set_renders_background():
    scene = make_scene(n=0, cameras=2, channels=4)
    backgrounds = torch.rand(2, 4)
    colors, alphas, grads, meta, _ = render_with_grads(scene, "torch", None, backgrounds=backgrounds)
    torch.testing.assert_close(colors, backgrounds[:, None, None, :].expand(2, 29, 37, 4))
    assert not alphas.any() and meta["n_isects"] == 0
    assert grads["means"].shape == (0, 3)


# ------------------------------------------------------------------------------------- bad input


def _bad(name: str, value):
    def edit(scene: dict) -> dict:
        return dict(scene, **{name: value(scene[name]) if callable(value) else value})

    return edit


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_bad("means", lambda t: t.index_fill(0, torch.tensor([3]), math.nan)), "means"),
        (_bad("quats", lambda t: t.index_fill(0, torch.tensor([0]), math.inf)), "quats"),
        (_bad("scales", lambda t: t.index_fill(0, torch.tensor([1]), -0.1)), "scales"),
        (_bad("opacities", lambda t: t.index_fill(0, torch.tensor([1]), 1.5)), "opacities"),
        (_bad("colors", lambda t: t.index_fill(0, torch.tensor([1]), math.nan)), "colors"),
        (_bad("viewmats", lambda t: t.index_fill(0, torch.tensor([1]), math.nan)), "viewmats"),
        (_bad("Ks", lambda t: t.index_fill(0, torch.tensor([0]), math.inf)), "Ks"),
        (_bad("quats", lambda t: t[:, :3]), "quats"),
        (_bad("colors", lambda t: t[:-1]), "colors"),
        (_bad("scales", lambda t: t[:-1]), "scales"),
        (_bad("Ks", lambda t: t[:1]), "Ks"),
        (_bad("quats", lambda t: t.index_fill(0, torch.tensor([2]), 0.0)), "quats"),
        (_bad("means", lambda t: t.long()), "means"),
        (_bad("width", 0), "width"),
        (_bad("height", 2.5), "height"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(edit, match):
    with pytest.raises(ValueError, match=match):
        rasterize(**edit(make_scene(n=6)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backgrounds": torch.zeros(2, 5)}, "backgrounds"),
        ({"near_plane": 0.0}, "near_plane"),
        ({"render_mode": "RGBD"}, "render_mode"),
        ({"tile_size": 0}, "tile_size"),
        ({"backend": "cuda"}, "backend"),
    ],
)
def test_bad_options_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rasterize(**make_scene(n=6), **kwargs)


def test_gsplat_backend_refuses_cpu_tensors_without_touching_its_kernels():
    with pytest.raises(ValueError, match="CUDA"):
        rasterize(**make_scene(n=6), backend="gsplat")
    _, _, meta = rasterize(**make_scene(n=6), backend="auto")
    assert meta["backend"] == "torch"
    if not torch.cuda.is_available():
        assert "gsplat.cuda._backend" not in sys.modules
