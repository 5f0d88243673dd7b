"""The optional 2D view: the highlighted Gaussians rendered from a client's camera by LIFT-GS's own
rasterizer (``liftgs.render.rasterize``), at a reduced resolution, for ``scene.set_background_image``.

Viser reports a client camera as ``wxyz``/``position`` of ``T_world_camera`` with OpenCV axes (+z forward,
+y down), a vertical field of view in radians and the canvas aspect (width / height).
"""

from __future__ import annotations

import numpy as np
import torch
import viser.transforms as vtf

from liftgs.model.types import Gaussians
from liftgs.render import rasterize, viewmat_from_c2w


def pinhole(fov: float, aspect: float, height: int) -> tuple[np.ndarray, int]:
    """``(K [3, 3], width)`` of a centred pinhole camera with vertical field of view ``fov`` (radians)."""
    width = max(1, round(height * aspect))
    focal = 0.5 * height / np.tan(0.5 * fov)
    K = np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    return K, width


def camera_to_world(wxyz: np.ndarray, position: np.ndarray) -> np.ndarray:
    """[4, 4] OpenCV camera-to-world pose from a viser camera's ``wxyz`` and ``position``."""
    c2w = np.eye(4)
    c2w[:3, :3] = vtf.SO3(np.asarray(wxyz, dtype=np.float64)).as_matrix()
    c2w[:3, 3] = position
    return c2w


@torch.inference_mode()
def render_view(
    gaussians: Gaussians,
    colors: np.ndarray,  # [G, 3] RGB in [0, 1] (e.g. the highlight)
    opacities: np.ndarray,  # [G] in [0, 1]
    c2w: np.ndarray,  # [4, 4] OpenCV camera-to-world
    K: np.ndarray,  # [3, 3] pixels
    width: int,
    height: int,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """[H, W, 3] uint8 image of the Gaussians with the given colors and opacities."""
    device = gaussians.means.device
    image, _, _ = rasterize(
        gaussians.means,
        gaussians.quats,
        gaussians.scales,
        torch.as_tensor(opacities, dtype=torch.float32, device=device),
        torch.as_tensor(colors, dtype=torch.float32, device=device),
        viewmat_from_c2w(torch.as_tensor(c2w, dtype=torch.float32, device=device))[None],
        torch.as_tensor(K, dtype=torch.float32, device=device)[None],
        width,
        height,
        backgrounds=torch.tensor([background], dtype=torch.float32, device=device),
    )
    return (image[0].clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
