"""nerfstudio method specifications: ``ns-train liftgs`` (render-supervised) and ``ns-train liftgs-3d``.

Registered under the ``nerfstudio.method_configs`` entry-point group (pyproject). Both methods train the
same network on the same scenes and expressions for the same number of steps; they differ only in the
mask supervision (2D masks in rendered views vs per-point masks from 3D labels). Defaults are sized for
CPU training of the embedded synthetic benchmark; the device is CUDA when available, else CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.types import MethodSpecification

from liftgs.losses.criterion import LossConfig
from liftgs.model.config import DecoderConfig, EncoderConfig, GaussianConfig, LiftGSConfig
from liftgs.nerfstudio.datamanager import LiftGSDataManagerConfig
from liftgs.nerfstudio.model import LiftGSModelConfig
from liftgs.nerfstudio.pipeline import LiftGSPipelineConfig
from liftgs.nerfstudio.schedule import WarmupCosineSchedulerConfig
from liftgs.nerfstudio.trainer import LiftGSTrainerConfig
from liftgs.pseudo.lift import DEFAULT_DIM
from liftgs.train.batch import SamplerConfig, Supervision


@dataclass
class AdamWOptimizerConfig(AdamOptimizerConfig):
    """AdamW (decoupled weight decay); nerfstudio 1.1.5 ships only Adam and RAdam configs."""

    _target: type = torch.optim.AdamW
    weight_decay: float = 1e-4


MAX_STEPS = 4500
"""Training steps of the default run (the cosine schedule decays over exactly these): 39-50 min on one
core of a 2-core machine beside a second run (README). 3,000 steps took 26 min there and scored about 1.5
points of val Acc@0.25 lower over three seeds."""


def training_network() -> LiftGSConfig:
    """The network the default runs train: a small serialised point transformer over 0.1 m voxels that
    reads xyz, rgb and the points' lifted pseudo-label features (``liftgs.pseudo.lift``, 32 wide); a
    two-layer decoder with the lifted affinity, the relational terms (two anchors per query, located by the
    decoder's own mask heads together with the colour term, the anchors' coefficients set by a relation
    classifier on the pooled sentence, and a 16-wide voxel-colour term keyed on the words each reader picks;
    both terms also measured relative to the query's candidates) and heads that read the target words' own
    embeddings."""
    return LiftGSConfig(
        voxel_size=0.1,
        max_points=3000,
        subsample="fps",
        encoder=EncoderConfig(
            enc_channels=(32, 64, 96),
            enc_depths=(1, 1, 1),
            dec_channels=(64, 64),
            dec_depths=(1, 1),
            patch_size=64,
            extra_channels=DEFAULT_DIM,
        ),
        decoder=DecoderConfig(
            d_model=96,
            num_queries=8,
            num_layers=2,
            num_heads=4,
            align_dim=64,
            lifted_affinity=True,
            anchor_slots=2,
            relation_coefficients="relation",
            colour_channels=16,
            read_target_words=True,
            anchors_grounded=True,
            candidate_relative=True,
            colour_from_words=True,
            colour_anchors=True,
        ),
        gaussians=GaussianConfig(hidden=32, feature_dim=16),
    )


def trainer_config(method_name: str, supervision: Supervision) -> TrainerConfig:
    """The whole training configuration of one method."""
    return LiftGSTrainerConfig(
        method_name=method_name,
        max_num_iterations=MAX_STEPS,
        steps_per_eval_batch=100,
        steps_per_eval_image=500,
        steps_per_eval_all_images=1000,
        steps_per_save=500,
        mixed_precision=False,
        machine=MachineConfig(device_type="cuda" if torch.cuda.is_available() else "cpu"),
        pipeline=LiftGSPipelineConfig(
            datamanager=LiftGSDataManagerConfig(
                supervision=supervision,
                sampler=SamplerConfig(
                    scenes_per_batch=1, expressions_per_scene=8, views_per_scene=3, category_prompts=2
                ),
            ),
            model=LiftGSModelConfig(
                network=training_network(), loss=LossConfig(anchor_words=1.0, relation=1.0)
            ),
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
