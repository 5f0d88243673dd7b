"""``ns-train liftgs-pretrain``: render-distillation pretraining on 2D pseudo-labels (no expressions, no 3D).

The same trainer as ``ns-train liftgs`` (``method_configs.liftgs.trainer_config``) with training batches from
``liftgs pseudo-label``'s segments instead of referring expressions (``train_source="pseudo"``): segment
embeddings are the queries, the segments' 2D masks in the sampled views the targets of the same
render-supervised mask loss, plus distillation of rendered Gaussian features to the per-pixel embedding
maps and the RGB/depth reconstruction. Validation still scores grounding on the expressions of the
validation split.

The network is ``ns-train liftgs``'s (``LiftGSConfig()``, whose Gaussians carry ``feature_dim`` rendered
features, the distillation target), so a pretrained run initialises fine-tuning directly::

    liftgs export-checkpoint --config outputs/.../liftgs-pretrain/.../config.yml --out pretrained.pt
    ns-train liftgs --pipeline.model.init-checkpoint pretrained.pt \\
        --pipeline.datamanager.labelled-fraction 0.5
"""

from __future__ import annotations

from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.plugins.types import MethodSpecification

from method_configs.liftgs import trainer_config


def as_pretraining(config: TrainerConfig, method_name: str = "liftgs-pretrain") -> TrainerConfig:
    """``config`` (an ``ns-train liftgs`` trainer config) turned into pretraining, in place: pseudo-label
    batches, no category prompts and a feature-loss weight of 1 (its network must have Gaussian features)."""
    config.method_name = method_name
    datamanager = config.pipeline.datamanager
    datamanager.train_source = "pseudo"
    datamanager.sampler.category_prompts = 0  # no category names: the queries are segment embeddings
    if not config.pipeline.model.network.gaussians.feature_dim:
        raise ValueError("liftgs-pretrain: the network needs Gaussian features (gaussians.feature_dim > 0)")
    config.pipeline.model.loss.feature = 1.0
    return config


liftgs_pretrain = MethodSpecification(
    config=as_pretraining(trainer_config("liftgs-pretrain", "views")),
    description="LIFT-GS pretraining on 2D pseudo-labels: segment embeddings as queries, distillation.",
)
