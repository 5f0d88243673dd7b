"""nerfstudio method specifications: ``ns-train liftgs`` (render-supervised) and ``ns-train liftgs-3d``.

Registered under the ``nerfstudio.method_configs`` entry-point group (pyproject). Both methods train the
same network (``LiftGSConfig()``: points only) with the same losses (``LossConfig()``) on the same batches
(``SamplerConfig()``) for the same number of steps; they differ only in the mask supervision (2D masks in
rendered views vs per-point masks from 3D labels). Defaults are sized for CPU training of the embedded
synthetic benchmark; the device is CUDA when available, else CPU.

To train the network that also reads each point's lifted 2D features (``lifted_features_network``; the
scenes need ``liftgs lift-features``)::

    ns-train liftgs --pipeline.model.network.encoder.extra-channels 32 \\
        --pipeline.model.network.decoder.lifted-affinity True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.types import MethodSpecification

from liftgs.model.config import LiftGSConfig
from liftgs.nerfstudio.datamanager import LiftGSDataManagerConfig
from liftgs.nerfstudio.model import LiftGSModelConfig
from liftgs.nerfstudio.pipeline import LiftGSPipelineConfig
from liftgs.nerfstudio.schedule import WarmupCosineSchedulerConfig
from liftgs.nerfstudio.trainer import LiftGSTrainerConfig
from liftgs.pseudo.lift import DEFAULT_DIM
from liftgs.train.batch import Supervision


@dataclass
class AdamWOptimizerConfig(AdamOptimizerConfig):
    """AdamW (decoupled weight decay); nerfstudio 1.1.5 ships only Adam and RAdam configs."""

    _target: type = torch.optim.AdamW
    weight_decay: float = 1e-4


MAX_STEPS = 4500
"""Training steps of the default run (the cosine schedule decays over exactly these). Chosen on val, see
docs/experiments.md."""


def lifted_features_network() -> LiftGSConfig:
    """The default network reading also each point's lifted 2D features (``liftgs lift-features``, e.g. real
    SAM + CLIP on the frames; ``DEFAULT_DIM`` wide), scored against the text by the lifted affinity
    (``DecoderConfig.lifted_affinity``). An opt-in variant: the shipped network reads points only."""
    config = LiftGSConfig()
    config.encoder.extra_channels = DEFAULT_DIM
    config.decoder.lifted_affinity = True
    return config


def trainer_config(method_name: str, supervision: Supervision) -> TrainerConfig:
    """The whole training configuration of one method."""
    return LiftGSTrainerConfig(
        method_name=method_name,
        max_num_iterations=MAX_STEPS,
        steps_per_eval_batch=100,
        steps_per_eval_image=500,
        steps_per_eval_all_images=1000,
        steps_per_save=250,
        mixed_precision=False,
        machine=MachineConfig(device_type="cuda" if torch.cuda.is_available() else "cpu"),
        pipeline=LiftGSPipelineConfig(
            datamanager=LiftGSDataManagerConfig(supervision=supervision),
            model=LiftGSModelConfig(),
        ),
        optimizers={
            "liftgs": {
                "optimizer": AdamWOptimizerConfig(lr=3e-3, weight_decay=1e-4, max_norm=1.0),
                "scheduler": WarmupCosineSchedulerConfig(
                    warmup_steps=100, final_factor=0.05, max_steps=MAX_STEPS
                ),
            }
        },
        vis="tensorboard",
        viewer=ViewerConfig(quit_on_train_completion=True),
    )


liftgs = MethodSpecification(
    config=trainer_config("liftgs", "views"),
    description="LIFT-GS: feedforward 3D grounding trained only by rendering Gaussians into 2D views.",
)

liftgs_3d = MethodSpecification(
    config=trainer_config("liftgs-3d", "points"),
    description="LIFT-GS network with 3D-supervised masks (per-point BCE + dice): the comparison baseline.",
)
