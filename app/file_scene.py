"""``liftgs-viewer --ply FILE`` / ``--load-config RUN/config.yml``: a scene file's OWN splats in the viewer.

The network reads the file's network points (``liftgs.ground_file``); the browser shows the file's splats,
carried to the network frame (z up, metres): a 3DGS file's or splatfacto run's Gaussians as they are
(means, covariances from scales and quaternions, SH DC colors, opacities), a point cloud's points as small
round splats (``POINT_SIGMA_FRACTION`` of their spacing). Grounding highlights them through the chain
splat -> network point -> model voxel (``FileLoadedScene.splat_voxel``; floaters are never highlighted).

Display cap: at most ``MAX_SHOWN_SPLATS`` splats are sent to the browser (the most opaque ones of a 3DGS
file, a fixed-seed random subset of a point cloud); the status says so. Grounding and export always use
every splat.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from scipy.spatial import cKDTree

from app.engine import LoadedScene, ViewerEngine
from app.splats import Splats, covariances
from liftgs.ground_file import check_points_only, network_scene
from liftgs.model.types import Gaussians
from liftgs.scene import Scene
from liftgs.scene_files import SplatSet, UserScene

MAX_SHOWN_SPLATS = 300_000
"""Most splats sent to the browser (32 bytes each, re-sent with every highlight): 10 MB per update."""
POINT_SIGMA_FRACTION = 0.5
"""A point cloud's splats: standard deviation as a fraction of the median nearest-neighbour spacing."""
POINT_OPACITY = 0.9
"""Opacity of a point cloud's splats."""
SPACING_SAMPLE = 10_000
"""Points whose nearest neighbour sets the spacing of a point cloud."""


def shown_rows(splats: SplatSet, limit: int = MAX_SHOWN_SPLATS) -> np.ndarray:
    """[D] sorted rows of ``splats`` to show: all of them up to ``limit``, else the ``limit`` most opaque
    (Gaussians) or a fixed-seed random subset (points)."""
    count = len(splats)
    if count <= limit:
        return np.arange(count)
    if splats.opacities is not None:
        return np.sort(np.argpartition(-splats.opacities, limit - 1)[:limit])
    return np.sort(np.random.default_rng(0).choice(count, limit, replace=False))


def shown_gaussians(user: UserScene, rows: np.ndarray) -> Gaussians:
    """The splats at ``rows`` as CPU ``Gaussians`` in the network frame (``point_index`` left at -1: the
    per-splat map is ``FileLoadedScene.splat_voxel``)."""
    splats, transform = user.splats, user.transform
    means = transform.to_network(splats.means[rows])
    if splats.scales is not None and splats.quats is not None and splats.opacities is not None:
        _, scales, quats = transform.to_network_gaussians(
            splats.means[rows], splats.scales[rows], splats.quats[rows]
        )
        opacities = splats.opacities[rows]
    else:
        spacing = point_spacing(means)
        scales = np.full((rows.size, 3), POINT_SIGMA_FRACTION * spacing)
        quats = np.tile([1.0, 0.0, 0.0, 0.0], (rows.size, 1))
        opacities = np.full(rows.size, POINT_OPACITY)

    def tensor(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values, dtype=np.float32))

    return Gaussians(
        means=tensor(means),
        quats=tensor(quats),
        scales=tensor(scales),
        opacities=tensor(opacities),
        colors=tensor(splats.colors[rows]),
        features=None,
        point_index=torch.full((rows.size,), -1, dtype=torch.int64),
    )


def point_spacing(points: np.ndarray) -> float:
    """Median distance (metres) from a sample of ``points`` [M, 3] to their nearest other point."""
    sample = points[np.random.default_rng(0).permutation(points.shape[0])[:SPACING_SAMPLE]]
    distances, _ = cKDTree(points).query(sample, k=2)
    positive = distances[:, 1][distances[:, 1] > 0]
    return float(np.median(positive)) if positive.size else 0.01


@dataclass(frozen=True)
class FileLoadedScene(LoadedScene):
    """A scene file encoded for the viewer: ``splats`` are the file's own (those shown), ``scene`` its
    network points.

    Attributes:
        user: the scene file (splats in the file frame, transform, network points).
        shown: [D] rows of ``user.splats`` that ``splats`` shows (``shown_rows``).
        splat_voxel: [N] int64 model voxel of every splat of the file, -1 for splats the network does not
            read.
        gaussians: the shown splats as ``Gaussians`` (network frame), for the 2D view.
    """

    user: UserScene
    shown: np.ndarray
    splat_voxel: np.ndarray
    gaussians: Gaussians

    def splat_values(self, point_values: np.ndarray) -> np.ndarray:
        """Per-voxel values ``[Pv]`` -> values ``[N]`` on every splat of the file (0 / False where unread)."""
        values = np.asarray(point_values)[np.maximum(self.splat_voxel, 0)]
        values[self.splat_voxel < 0] = 0
        return values

    def gaussian_values(self, point_values: np.ndarray) -> np.ndarray:
        """Per-voxel values ``[Pv]`` -> values ``[D]`` on the splats shown."""
        voxel = self.splat_voxel[self.shown]
        values = np.asarray(point_values)[np.maximum(voxel, 0)]
        values[voxel < 0] = 0
        return values

    @property
    def view_gaussians(self) -> Gaussians:
        return self.gaussians

    @property
    def display_note(self) -> str:
        total = len(self.user.splats)
        if self.shown.size == total:
            return ""
        rule = "the most opaque" if self.user.splats.opacities is not None else "a random subset"
        return (
            f"Showing {self.shown.size:,} of {total:,} splats ({rule}; the display cap); "
            "grounding and export use all of them."
        )


def scene_name(user: UserScene) -> str:
    """The viewer's name for a scene file: the file's stem, or a run folder's name."""
    path = user.splats.path
    return path.name if path.is_dir() else path.stem


class FileViewerEngine(ViewerEngine):
    """A ``ViewerEngine`` offering one scene: a scene file, shown with its own splats (at most
    ``max_shown`` of them, ``shown_rows``).

    Raises:
        ValueError: a model that reads lifted point features (``check_points_only``).
    """

    def __init__(
        self, model: torch.nn.Module, user: UserScene, top_k: int = 5, max_shown: int = MAX_SHOWN_SPLATS
    ) -> None:
        check_points_only(model)
        self.user = user
        name = scene_name(user)
        self._network_scene = network_scene(user, name)
        self._shown = shown_rows(user.splats, max_shown)
        self._shown_gaussians = shown_gaussians(user, self._shown)
        super().__init__(model, [name], lambda _: self._network_scene, top_k=top_k, cache_size=1)

    def _encode(self, scene: Scene) -> FileLoadedScene:
        base = super()._encode(scene)
        network_voxel = self.user.splat_to_network_voxel
        splat_voxel = np.where(network_voxel >= 0, base.source_to_voxel[np.maximum(network_voxel, 0)], -1)
        gaussians = self._shown_gaussians
        splats = Splats(
            centers=gaussians.means.numpy(),
            covariances=covariances(gaussians.quats.numpy(), gaussians.scales.numpy()),
            colors=gaussians.colors.numpy(),
            opacities=gaussians.opacities.numpy(),
            point_index=splat_voxel[self._shown],
        )
        own = {field.name: getattr(base, field.name) for field in fields(LoadedScene)}
        return FileLoadedScene(
            **{**own, "splats": splats},
            user=self.user,
            shown=self._shown,
            splat_voxel=splat_voxel.astype(np.int64),
            gaussians=gaussians,
        )
