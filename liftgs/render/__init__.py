"""Differentiable Gaussian splatting with gsplat 1.4's conventions (``rasterize``), on any device.

Public API:

- ``rasterize(...)``: the one entry point (backends "torch", "gsplat", "dense", "auto").
- ``viewmat_from_c2w``, ``scale_intrinsics``: camera helpers.
- ``project_gaussians``: the EWA projection stage on its own.
"""

from liftgs.render.camera import scale_intrinsics, viewmat_from_c2w
from liftgs.render.projection import Projection, project_gaussians
from liftgs.render.rasterizer import gsplat_cuda_available, rasterize

__all__ = [
    "Projection",
    "gsplat_cuda_available",
    "project_gaussians",
    "rasterize",
    "scale_intrinsics",
    "viewmat_from_c2w",
]
