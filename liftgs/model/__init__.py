"""The LIFT-GS network: point encoder, Gaussian head, text encoders and grounding decoder.

Public API (see docs/INTERFACES.md): ``LiftGS``, ``LiftGSConfig`` and its parts, the data containers
(``TextFeatures``, ``Gaussians``, ``SceneFeatures``, ``GroundingOutput``, ``Prediction``), ``voxelize``,
text encoders and ``build_text_encoder``, and checkpoint I/O.
"""

from liftgs.model.checkpoint import CheckpointError, load_model, save_checkpoint
from liftgs.model.config import DecoderConfig, EncoderConfig, GaussianConfig, LiftGSConfig
from liftgs.model.grounded_mask import answer_voxels, grounded_voxels, link_distance, mask_box
from liftgs.model.liftgs import LiftGS
from liftgs.model.text import (
    HFTextEncoder,
    MiniLMTextEncoder,
    OpenCLIPTextEncoder,
    TextEncoder,
    build_text_encoder,
)
from liftgs.model.types import Gaussians, GroundingOutput, Prediction, SceneFeatures, TextFeatures
from liftgs.model.voxelize import Voxels, voxelize

__all__ = [
    "CheckpointError",
    "DecoderConfig",
    "EncoderConfig",
    "GaussianConfig",
    "Gaussians",
    "GroundingOutput",
    "HFTextEncoder",
    "LiftGS",
    "LiftGSConfig",
    "MiniLMTextEncoder",
    "OpenCLIPTextEncoder",
    "Prediction",
    "SceneFeatures",
    "TextEncoder",
    "TextFeatures",
    "Voxels",
    "build_text_encoder",
    "load_model",
    "answer_voxels",
    "grounded_voxels",
    "link_distance",
    "mask_box",
    "save_checkpoint",
    "voxelize",
]
