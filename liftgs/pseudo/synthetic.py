"""The stand-in for SAM + CLIP on datasets that carry 2D instance masks (the embedded benchmark).

Segments are the frame's instance masks (one segment per visible object, in object-id order); each
segment's "CLIP" embedding is the text encoder's pooled embedding of the object's name, L2-normalised.
``liftgs.pseudo.noise`` then degrades both the way real foundation-model labels are wrong, with a random
stream seeded by ``(seed, scene id, frame name)``, so every frame's noise is reproducible on its own.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict

import numpy as np
import torch

from liftgs.model.text import TextEncoder
from liftgs.pseudo.labeller import FrameInput
from liftgs.pseudo.noise import NoiseConfig, apply_noise
from liftgs.pseudo.segments import NO_SEGMENT, PseudoLabelError, PseudoLabels, compact


def frame_rng(seed: int, scene_id: str, frame_name: str) -> np.random.Generator:
    """A random stream that depends only on the seed, the scene and the frame (not on visiting order)."""
    return np.random.default_rng([seed, zlib.crc32(scene_id.encode()), zlib.crc32(frame_name.encode())])


class SyntheticLabeller:
    """Instance masks + name embeddings + noise (see the module docstring)."""

    needs_instances = True

    def __init__(
        self,
        text_encoder: TextEncoder,
        noise: NoiseConfig,
        seed: int = 0,
        text_encoder_spec: str = "minilm",
    ) -> None:
        """``noise`` holds the probabilities actually used (already scaled by the noise level)."""
        self.text_encoder = text_encoder
        self.noise = noise
        self.seed = seed
        self.text_encoder_spec = text_encoder_spec

    @property
    def embedding_dim(self) -> int:
        return int(self.text_encoder.dim)

    def info(self) -> dict:
        return {
            "labeller": "synthetic",
            "text_encoder": self.text_encoder_spec,
            "embedding_dim": self.embedding_dim,
            "noise": asdict(self.noise),
            "seed": self.seed,
        }

    def embed_names(self, names: list[str]) -> np.ndarray:
        """[len(names), D] float32 L2-normalised pooled text embeddings."""
        if not names:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        pooled = self.text_encoder.encode(names).pooled.float()
        return torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()

    def label(self, frame: FrameInput) -> PseudoLabels:
        if frame.instance is None:
            raise PseudoLabelError(
                f"scene {frame.scene_id} frame {frame.name}: the synthetic labeller needs an instance mask"
            )
        instance = np.asarray(frame.instance, dtype=np.int32)
        object_ids = np.unique(instance)
        object_ids = object_ids[object_ids != NO_SEGMENT]
        unknown = [int(i) for i in object_ids if int(i) not in frame.object_names]
        if unknown:
            raise PseudoLabelError(
                f"scene {frame.scene_id} frame {frame.name}: instance ids {unknown[:5]} are not in "
                "objects.json"
            )
        segment_map, ids = compact(instance, np.arange(int(instance.max(initial=-1)) + 1))
        embeddings = self.embed_names([frame.object_names[int(i)] for i in ids])
        if not self.noise.is_clean:
            rng = frame_rng(self.seed, frame.scene_id, frame.name)
            segment_map, embeddings = apply_noise(segment_map, embeddings, self.noise, rng)
        return PseudoLabels(
            segment_map=segment_map,
            embeddings=embeddings,
            scores=np.ones(len(embeddings), dtype=np.float32),
            meta={"labeller": "synthetic"},
        )
