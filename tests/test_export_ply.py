"""3DGS PLY export: the standard property names, the pre-activation encoding, masks and bad input."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from plyfile import PlyData

from liftgs.export_ply import SH_C0, gaussian_property_names, write_gaussians_ply


def _gaussians(count: int = 5, seed: int = 0) -> SimpleNamespace:
    generator = torch.Generator().manual_seed(seed)
    quats = torch.randn(count, 4, generator=generator)
    return SimpleNamespace(
        means=torch.randn(count, 3, generator=generator),
        quats=quats / quats.norm(dim=1, keepdim=True),
        scales=torch.rand(count, 3, generator=generator) * 0.1 + 0.01,
        opacities=torch.rand(count, generator=generator) * 0.8 + 0.1,
        colors=torch.rand(count, 3, generator=generator),
    )


def _decode(vertex) -> dict[str, np.ndarray]:
    """Back to activated values with the formulas 3DGS viewers use."""
    column = lambda *names: np.stack([vertex[name] for name in names], axis=1)
    return {
        "means": column("x", "y", "z"),
        "colors": 0.5 + SH_C0 * column("f_dc_0", "f_dc_1", "f_dc_2"),
        "opacities": 1.0 / (1.0 + np.exp(-vertex["opacity"])),
        "scales": np.exp(column("scale_0", "scale_1", "scale_2")),
        "quats": column("rot_0", "rot_1", "rot_2", "rot_3"),
    }


def test_ply_has_3dgs_layout_and_round_trips(tmp_path):
    gaussians = _gaussians()
    path = tmp_path / "out" / "scene.ply"
    assert write_gaussians_ply(path, gaussians) == 5
    ply = PlyData.read(str(path))
    vertex = ply["vertex"]
    names = [prop.name for prop in vertex.properties]
    assert names == gaussian_property_names()
    assert {"x", "nx", "f_dc_0", "f_rest_44", "opacity", "scale_2", "rot_3"} <= set(names)
    assert all(vertex[name].dtype == np.float32 for name in names)
    assert not ply.text
    decoded = _decode(vertex)
    for name, value in decoded.items():
        np.testing.assert_allclose(value, getattr(gaussians, name).numpy(), atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(vertex["f_rest_7"], 0.0)


def test_mask_selects_gaussians_and_quats_are_normalised(tmp_path):
    gaussians = _gaussians(6)
    gaussians.quats = gaussians.quats * 3.0
    mask = np.array([True, False, True, False, False, True])
    path = tmp_path / "masked.ply"
    assert write_gaussians_ply(path, gaussians, mask=mask, include_sh_rest=False) == 3
    vertex = PlyData.read(str(path))["vertex"]
    assert "f_rest_0" not in [prop.name for prop in vertex.properties]
    decoded = _decode(vertex)
    np.testing.assert_allclose(decoded["means"], gaussians.means.numpy()[mask], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(decoded["quats"], axis=1), 1.0, atol=1e-6)


def test_bad_inputs_raise_clear_errors(tmp_path):
    gaussians = _gaussians(4)
    with pytest.raises(ValueError, match="mask has 3 entries for 4"):
        write_gaussians_ply(tmp_path / "a.ply", gaussians, mask=np.ones(3, bool))
    gaussians.scales = torch.ones(4, 2)
    with pytest.raises(ValueError, match="scales"):
        write_gaussians_ply(tmp_path / "b.ply", gaussians)
    gaussians = _gaussians(4)
    gaussians.means[1, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        write_gaussians_ply(tmp_path / "c.ply", gaussians)
