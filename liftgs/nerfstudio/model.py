"""The nerfstudio ``Model`` of LIFT-GS: a thin shell around ``liftgs.model.LiftGS`` and the training losses.

Its forward pass takes a ``TrainBatch`` (scenes x expressions x views) instead of rays and returns the
losses of ``liftgs.train.step.batch_losses`` (computed inside ``forward`` so that DDP sees every tensor).
For the nerfstudio viewer and eval images, ``get_outputs_for_camera`` renders the predicted Gaussians of
the "viewer scene" (set by the pipeline) with the grounded object's mask probability as an extra channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.models.base_model import Model, ModelConfig
from torch import Tensor
from torch.nn import Parameter

from liftgs.losses.criterion import LossConfig
from liftgs.losses.targets import Views
from liftgs.model import LiftGS, LiftGSConfig, load_model
from liftgs.model.types import SceneFeatures
from liftgs.render import rasterize
from liftgs.scene import Scene
from liftgs.train.batch import TrainBatch
from liftgs.train.step import batch_losses

OPENGL_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
"""Right-multiplying a camera-to-world rotation flips nerfstudio's camera axes (OpenGL) to OpenCV's."""

HIGHLIGHT = (1.0, 0.15, 0.1)
"""Color blended over pixels of the grounded object in the ``highlight`` output."""


@dataclass
class LiftGSModelConfig(ModelConfig):
    """The network, its losses and how it renders."""

    _target: type = field(default_factory=lambda: LiftGSModel)
    enable_collider: bool = False
    network: LiftGSConfig = field(default_factory=LiftGSConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    backend: str = "auto"
    """``liftgs.render.rasterize`` backend ("auto": gsplat on CUDA, else the torch tile renderer)."""
    init_checkpoint: Path | None = None
    """Start from the weights of a LIFT-GS checkpoint (``save_checkpoint``; its config must match)."""
    text_cache: int = 16384
    """Encoded texts the frozen text encoder keeps (else a training set's texts are re-encoded each epoch)."""


def cameras_to_views(camera: Cameras) -> tuple[Tensor, Tensor, int, int]:
    """``(viewmats [C, 4, 4] OpenCV world-to-camera, Ks [C, 3, 3], width, height)`` of nerfstudio cameras."""
    c2w = camera.camera_to_worlds.reshape(-1, 3, 4).float()
    rotation = c2w[:, :, :3] @ OPENGL_TO_OPENCV.to(c2w)
    viewmats = torch.zeros(c2w.shape[0], 4, 4, device=c2w.device)
    viewmats[:, :3, :3] = rotation.transpose(1, 2)
    viewmats[:, :3, 3] = -(rotation.transpose(1, 2) @ c2w[:, :, 3:])[..., 0]
    viewmats[:, 3, 3] = 1.0
    Ks = camera.get_intrinsics_matrices().reshape(-1, 3, 3).float()
    return viewmats, Ks, int(camera.width.flatten()[0]), int(camera.height.flatten()[0])


class LiftGSModel(Model):
    """nerfstudio wrapper of ``LiftGS`` (``self.network``)."""

    config: LiftGSModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        if self.config.init_checkpoint is not None:
            self.network, _ = load_model(self.config.init_checkpoint, expected_config=self.config.network)
            self.network.train()
        else:
            self.network = LiftGS(self.config.network)
        self.network.text_cache_size = self.config.text_cache
        self._viewer_scene: tuple[Scene, str] | None = None
        self._viewer_cache: tuple[int, SceneFeatures, Tensor] | None = None
        self._version = 0
        """Counts training forwards, so the viewer re-encodes its scene after the weights change."""

    def get_param_groups(self) -> dict[str, list[Parameter]]:
        return {"liftgs": [p for p in self.network.parameters() if p.requires_grad]}

    def forward(self, batch: TrainBatch) -> dict:  # type: ignore[override]
        return self.get_outputs(batch)

    def get_outputs(self, batch: TrainBatch) -> dict:  # type: ignore[override]
        """``{"losses": weighted scalar losses, "metrics": diagnostics}`` of a batch (means over scenes)."""
        if self.training:
            self._version += 1
        losses, metrics = batch_losses(self.network, batch, self.config.loss, self.config.backend)
        return {"losses": losses, "metrics": metrics}

    def get_metrics_dict(self, outputs: dict, batch: TrainBatch) -> dict[str, float]:
        return dict(outputs["metrics"])

    def get_loss_dict(self, outputs: dict, batch: TrainBatch, metrics_dict=None) -> dict[str, Tensor]:
        return dict(outputs["losses"])

    # ----------------------------------------------------------------------------------- viewing

    def set_viewer_scene(self, scene: Scene, text: str) -> None:
        """The scene and query that ``get_outputs_for_camera`` shows."""
        self._viewer_scene = (scene, text)
        self._viewer_cache = None

    @torch.no_grad()
    def ground_scene(self, scene: Scene, text: str) -> tuple[SceneFeatures, Tensor]:
        """Encodes a scene in eval mode and grounds ``text``: the encoding and the chosen query's per-voxel
        probabilities [Pv]."""
        was_training = self.network.training
        self.network.eval()
        try:
            features = self.network.encode(scene)
            return features, self.network.predict(features, [text])[0].point_probs
        finally:
            self.network.train(was_training)

    def _viewer_features(self) -> tuple[SceneFeatures, Tensor]:
        """The viewer scene's ``ground_scene``, cached until the weights change."""
        if self._viewer_scene is None:
            raise ValueError("no viewer scene: call set_viewer_scene first")
        if self._viewer_cache is None or self._viewer_cache[0] != self._version:
            self._viewer_cache = (self._version, *self.ground_scene(*self._viewer_scene))
        return self._viewer_cache[1], self._viewer_cache[2]

    @torch.no_grad()
    def render_prediction(self, scene: SceneFeatures, probs: Tensor, views: Views) -> dict[str, Tensor]:
        """Renders a scene's predicted Gaussians, grounded probabilities ``probs`` [Pv] included, into views:
        rgb [V, H, W, 3], depth / accumulation / mask [V, H, W, 1] (mask = composited probability),
        highlight [V, H, W, 3] (rgb with the mask blended in red)."""
        gaussians = scene.gaussians
        colors = torch.cat([gaussians.colors, gaussians.take(probs)[:, None]], dim=-1)
        rendered, alphas, _ = rasterize(
            gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, colors,
            views.viewmats.to(self.device), views.Ks.to(self.device), views.width, views.height,
            render_mode="RGB+ED", backend=self.config.backend,
        )  # fmt: skip
        rgb, mask = rendered[..., :3].clamp(0, 1), rendered[..., 3:4].clamp(0, 1)
        highlight = rgb * (1 - 0.6 * mask) + 0.6 * mask * torch.tensor(HIGHLIGHT, device=rgb.device)
        return {
            "rgb": rgb,
            "depth": rendered[..., 4:5],
            "accumulation": alphas,
            "mask": mask,
            "highlight": highlight,
        }

    @torch.no_grad()
    def get_outputs_for_camera(self, camera: Cameras, obb_box=None) -> dict[str, Tensor]:
        """One nerfstudio camera's render of the viewer scene ([H, W, C] per output)."""
        viewmats, Ks, width, height = cameras_to_views(camera[0:1] if camera.shape else camera)
        images = torch.zeros(1, height, width, 3)
        views = Views(viewmats, Ks, images, torch.zeros(1, height, width))
        outputs = self.render_prediction(*self._viewer_features(), views)
        return {name: value[0] for name, value in outputs.items()}

    def get_image_metrics_and_images(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor]
    ) -> tuple[dict[str, float], dict[str, Tensor]]:
        """PSNR of the render vs ``batch["image"]`` [H, W, 3], 2D IoU of the mask vs ``batch["mask"]``."""
        image, target = batch["image"].to(outputs["rgb"]), batch["mask"].to(outputs["rgb"]) > 0.5
        mse = torch.mean((outputs["rgb"] - image) ** 2)
        predicted = outputs["mask"][..., 0] > 0.5
        union = (predicted | target).sum().clamp(min=1)
        metrics = {
            "psnr": float(-10.0 * torch.log10(mse.clamp(min=1e-10))),
            "mask_iou_2d": float((predicted & target).sum() / union),
        }
        truth = image * (1 - 0.6 * target[..., None]) + 0.6 * target[..., None] * torch.tensor(HIGHLIGHT).to(
            image
        )
        return metrics, {"img": torch.cat([truth, outputs["highlight"]], dim=1)}
