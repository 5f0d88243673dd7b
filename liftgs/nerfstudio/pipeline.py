"""The nerfstudio Pipeline of LIFT-GS: batches from ``LiftGSDataManager`` into ``LiftGSModel``.

- training: ``get_train_loss_dict`` feeds a ``TrainBatch`` to the (possibly DDP-wrapped) model; on CPU,
  DDP runs with the gloo backend and ``device_ids=None``.
- evaluation: ``get_eval_loss_dict`` (validation losses), ``get_eval_image_metrics_and_images`` (one
  validation frame rendered from the predicted Gaussians with the grounded mask, PSNR and 2D mask IoU),
  ``get_average_eval_image_metrics`` (grounding accuracy: Acc@0.25/0.5 via ``liftgs.eval.evaluate``, on
  the first ``eval_max_scenes`` validation scenes during training, on the whole split for ``ns-eval``).
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist
from nerfstudio.models.base_model import Model
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from liftgs.eval.evaluate import evaluate
from liftgs.eval.metrics import THRESHOLDS
from liftgs.losses.targets import Views
from liftgs.nerfstudio.datamanager import LiftGSDataManagerConfig
from liftgs.nerfstudio.model import LiftGSModelConfig
from liftgs.render import viewmat_from_c2w

EMPTY_SCENE_BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


@dataclass
class LiftGSPipelineConfig(VanillaPipelineConfig):
    _target: type = field(default_factory=lambda: LiftGSPipeline)
    datamanager: LiftGSDataManagerConfig = field(default_factory=LiftGSDataManagerConfig)
    model: LiftGSModelConfig = field(default_factory=LiftGSModelConfig)
    eval_max_scenes: int = 6
    """Validation scenes scored by the periodic accuracy evaluation during training (ns-eval: all)."""
    threads: int | None = None
    """torch CPU threads (None: torch's default). On a busy machine 1 thread often beats 2."""


def flatten_summary(summary: dict) -> dict[str, float]:
    """Scalar entries of ``liftgs.eval.metrics.grounding_accuracy``'s summary, e.g. ``acc@0.25``,
    ``acc@0.25/unique``, ``acc@0.25/relation/color`` and ``acc@0.25/wording/unseen words`` (when the
    expressions say them), ``target_first`` (see
    ``instance_ranking``); groups without expressions are left out."""
    flat: dict[str, float] = {"count": float(summary["count"])}
    for threshold in THRESHOLDS:
        key = f"acc@{threshold:g}"
        for group, value in summary[key].items():
            if value is not None:
                flat[key if group == "overall" else f"{key}/{group}"] = float(value)
    for table, prefix in (("per_relation", "relation"), ("per_wording", "wording")):
        for group, row in summary.get(table, {}).items():
            for threshold in THRESHOLDS:
                key = f"acc@{threshold:g}"
                if row[key] is not None:
                    flat[f"{key}/{prefix}/{group}"] = float(row[key])
    for key in ("mean_box_iou", "mean_mask_iou"):
        if summary.get(key) is not None:
            flat[key] = float(summary[key])
    if "instance_ranking" in summary:
        flat["target_first"] = summary["instance_ranking"]["target_first"]
        flat["target_first/chance"] = summary["instance_ranking"]["chance"]
    return flat


class LiftGSPipeline(VanillaPipeline):
    """nerfstudio pipeline over a cross-scene grounding dataset (see module docstring)."""

    config: LiftGSPipelineConfig

    def __init__(
        self,
        config: LiftGSPipelineConfig,
        device: str,
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        grad_scaler=None,
    ) -> None:
        nn.Module.__init__(self)  # VanillaPipeline.__init__ assumes a ray dataset
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.config = config
        self.test_mode = test_mode
        self.world_size = world_size
        self.datamanager = config.datamanager.setup(
            device=device,
            test_mode=test_mode,
            world_size=world_size,
            local_rank=local_rank,
            network=config.model.network,
        )
        train_dataset = self.datamanager.train_dataset
        self._model = config.model.setup(
            scene_box=train_dataset.scene_box if train_dataset is not None else EMPTY_SCENE_BOX,
            num_train_data=len(train_dataset) if train_dataset is not None else 0,
            device=device,
            grad_scaler=grad_scaler,
        )
        self.model.to(device)
        if train_dataset is not None:
            scene, text = self.datamanager.viewer_query()
            try:  # the first training scene's lifted features fit the network (each batch checks its own)
                self.model.network.check_point_feature_space(scene.point_feature_space)
            except ValueError as error:
                raise SystemExit(f"ns-train: {error}") from None
            self.model.set_viewer_scene(scene, text)
        if world_size > 1:
            device_ids = [local_rank] if torch.device(device).type == "cuda" else None
            self._model = typing.cast(
                Model, DDP(self._model, device_ids=device_ids, find_unused_parameters=True)
            )
            dist.barrier()

    def get_train_loss_dict(self, step: int):
        batch = self.datamanager.next_train(step)
        outputs = self._model(batch)  # the DDP-wrapped model when distributed
        metrics = self.model.get_metrics_dict(outputs, batch)
        return outputs, self.model.get_loss_dict(outputs, batch, metrics), metrics

    @torch.no_grad()
    def get_eval_loss_dict(self, step: int):
        self.eval()
        batch = self.datamanager.next_eval(step)
        outputs = self.model(batch)
        metrics = self.model.get_metrics_dict(outputs, batch)
        loss_dict = self.model.get_loss_dict(outputs, batch, metrics)
        self.train()
        return outputs, loss_dict, metrics

    @torch.no_grad()
    def get_eval_image_metrics_and_images(self, step: int):
        """One validation frame: ground truth with the target highlighted | render with the prediction."""
        self.eval()
        scene, expression, frame_index = self.datamanager.next_eval_image(step)
        frame = scene.frames[frame_index]
        views = Views(
            viewmats=viewmat_from_c2w(torch.as_tensor(frame.c2w, dtype=torch.float32))[None],
            Ks=torch.as_tensor(frame.K, dtype=torch.float32)[None],
            images=torch.zeros(1, frame.height, frame.width, 3),
            depths=torch.zeros(1, frame.height, frame.width),
        )
        features, probs = self.model.ground_scene(scene, expression.description)
        outputs = {
            name: value[0] for name, value in self.model.render_prediction(features, probs, views).items()
        }
        batch = {
            "image": torch.as_tensor(frame.image, dtype=torch.float32) / 255.0,
            "mask": torch.as_tensor(np.asarray(frame.instance) == expression.object_id, dtype=torch.float32),
        }
        metrics, images = self.model.get_image_metrics_and_images(outputs, batch)
        metrics["num_rays"] = frame.height * frame.width
        self.train()
        return metrics, images

    @torch.no_grad()
    def get_average_eval_image_metrics(
        self, step: int | None = None, output_path: Path | None = None, get_std: bool = False
    ) -> dict[str, float]:
        """Grounding accuracy on the evaluation split (the first ``eval_max_scenes`` scenes during training).

        With ``output_path`` (``ns-eval --render-output-path``), every scored expression is written to
        ``output_path / "grounding_records.json"``.
        """
        max_scenes = None if step is None else self.config.eval_max_scenes
        result = evaluate(
            self.model.network, self.datamanager.eval_data, max_scenes=max_scenes, progress=True
        )
        metrics = flatten_summary(result.summary)
        CONSOLE.print(
            f"[bold]grounding ({self.datamanager.eval_data.split}, {result.num_scenes} scenes, "
            f"{int(metrics['count'])} expressions): "
            + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k.startswith("acc@") and "/" not in k)
        )
        if output_path is not None:
            output_path.mkdir(parents=True, exist_ok=True)
            (output_path / "grounding_records.json").write_text(json.dumps(result.to_json(), indent=1))
        return metrics
