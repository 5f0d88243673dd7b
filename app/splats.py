"""The scene's predicted Gaussians as browser splats (viser 0.2.7's Gaussian splat node).

Everything is numpy in the world frame (z up, metres). The browser needs covariances, so they are
computed once per scene here; a new highlight re-sends the same geometry with new colors.

viser 0.2.7's web client keeps drawing the old buffer when a splat node is re-added under the same name
(its splat component only registers its buffer when it mounts), so ``SplatLayer`` sends every version
under a fresh child name and removes the previous one in the same message window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import viser
from scipy.spatial.transform import Rotation

from liftgs.model.types import Gaussians


@dataclass(frozen=True)
class Splats:
    """One scene's Gaussians, ready to send.

    Attributes:
        centers: [G, 3] float32 means (metres).
        covariances: [G, 3, 3] float32 ``R diag(scales**2) R^T``.
        colors: [G, 3] float32 RGB in [0, 1] (the model's reconstruction colors).
        opacities: [G] float32 in (0, 1).
        point_index: [G] int64 voxel point each Gaussian comes from (per-point mask -> per-Gaussian).
    """

    centers: np.ndarray
    covariances: np.ndarray
    colors: np.ndarray
    opacities: np.ndarray
    point_index: np.ndarray

    def __len__(self) -> int:
        return int(self.centers.shape[0])

    @classmethod
    def from_gaussians(cls, gaussians: Gaussians) -> Splats:
        quats, scales = gaussians.quats.detach().cpu().numpy(), gaussians.scales.detach().cpu().numpy()
        return cls(
            centers=gaussians.means.detach().cpu().float().numpy(),
            covariances=covariances(quats, scales),
            colors=gaussians.colors.detach().cpu().float().clamp(0.0, 1.0).numpy(),
            opacities=gaussians.opacities.detach().cpu().float().clamp(0.0, 1.0).numpy(),
            point_index=gaussians.point_index.detach().cpu().numpy().astype(np.int64),
        )


def covariances(
    quats: np.ndarray,  # [G, 4] wxyz, any norm
    scales: np.ndarray,  # [G, 3] standard deviations
) -> np.ndarray:
    """[G, 3, 3] float32 ``R diag(scales**2) R^T``."""
    rotations = Rotation.from_quat(np.asarray(quats, dtype=np.float64), scalar_first=True).as_matrix()
    variances = np.asarray(scales, dtype=np.float64) ** 2
    return np.einsum("gij,gj,gkj->gik", rotations, variances, rotations).astype(np.float32)


class SplatLayer:
    """The splats of one client under the scene node ``name`` (a frame whose visibility hides them).

    Only the thread that draws (the client's worker) calls ``show``/``reset``.
    """

    def __init__(self, scene_api: viser.SceneApi, name: str) -> None:
        self._scene_api = scene_api
        self.name = name
        self._frame: viser.FrameHandle | None = None
        self._current: viser.GaussianSplatHandle | None = None
        self._version = 0

    def reset(self, visible: bool) -> None:
        """(Re-)creates the parent node, removing any splats shown."""
        if self._current is not None:
            self._current.remove()
            self._current = None
        self._frame = self._scene_api.add_frame(self.name, show_axes=False, visible=visible)

    def show(
        self,
        splats: Splats,
        colors: np.ndarray | None = None,  # [G, 3] RGB in [0, 1]; default splats.colors
        opacities: np.ndarray | None = None,  # [G] in [0, 1]; default splats.opacities
    ) -> None:
        """Sends ``splats`` with these colors as the new version and removes the previous version."""
        colors = splats.colors if colors is None else colors
        opacities = splats.opacities if opacities is None else opacities
        self._version += 1
        previous = self._current
        self._current = self._scene_api._add_gaussian_splats(  # public from viser 0.2.9 on
            f"{self.name}/v{self._version}",
            centers=splats.centers,
            covariances=splats.covariances,
            rgbs=colors,
            opacities=opacities[:, None],
        )
        if previous is not None:
            previous.remove()

    @property
    def visible(self) -> bool:
        return self._frame is not None and self._frame.visible

    @visible.setter
    def visible(self, visible: bool) -> None:
        if self._frame is not None:
            self._frame.visible = visible
