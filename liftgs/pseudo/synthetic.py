"""The stand-in for SAM + CLIP on datasets that carry 2D instance masks (the embedded benchmark).

Segments are what SAM's "segment everything" would return on a clean frame: the frame's instance masks (one
segment per visible object, in object-id order), then one ``wall`` and one ``floor`` segment for the
background pixels (``background_classes``: from the frame's depth and pose, so the labeller needs them to
make those two; a frame given without depth gets object segments only). Each segment's "CLIP" embedding is
the text encoder's pooled embedding of the object's name (or of "wall" / "floor"), L2-normalised.
``liftgs.pseudo.noise`` then degrades both the way real foundation-model labels are wrong: embeddings first
(``perturb_embeddings``: confused with a nearby name of ``vocabulary``, jittered), then segments
(``apply_noise``), with random streams seeded by ``(seed, scene id, frame name)`` (``frame_rng``), so every
frame's noise is reproducible on its own.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import torch

from liftgs.model.text import TextEncoder
from liftgs.pseudo.labeller import FrameInput
from liftgs.pseudo.noise import NoiseConfig, apply_noise, perturb_embeddings
from liftgs.pseudo.segments import NO_SEGMENT, PseudoLabelError, PseudoLabels, compact

WALL, FLOOR = "wall", "floor"
BACKGROUND_NAMES = (WALL, FLOOR)
"""Names of the background segments, in the order they follow the objects' segments."""
FLOOR_TOLERANCE = 0.05
"""Metres: a background pixel whose surface point lies within this height of z = 0 is floor."""


EMBEDDING_STREAM = 1
"""Key of the frame's second random stream, the one the embedding noise draws from."""


def frame_rng(seed: int, scene_id: str, frame_name: str, *stream: int) -> np.random.Generator:
    """A random stream that depends only on the seed, the scene, the frame (not on visiting order) and the
    optional ``stream`` key: the segment noise draws from the stream without key, the embedding noise from
    ``EMBEDDING_STREAM``, so changing one never changes the other's draws."""
    key = [seed, zlib.crc32(scene_id.encode()), zlib.crc32(frame_name.encode()), *stream]
    return np.random.default_rng(key)


def benchmark_vocabulary() -> list[str]:
    """The embedded benchmark's 16 category names followed by ``BACKGROUND_NAMES``."""
    from liftgs.data.synthetic.objects import CATEGORIES

    return [*CATEGORIES, *BACKGROUND_NAMES]


def surface_heights(
    shape: tuple[int, int],  # (H, W) of the label map (the color image)
    K: np.ndarray,  # [3, 3] color intrinsics
    depth: np.ndarray,  # [h, w] float32 z-depth in metres, 0 = none
    depth_K: np.ndarray,  # [3, 3] depth intrinsics
    c2w: np.ndarray,  # [4, 4] camera-to-world, OpenCV axes
) -> np.ndarray:
    """[H, W] float64 world z of the surface each pixel centre sees (NaN where the depth has no value).

    The ray through a color pixel centre is looked up in the depth map at the pixel that ray falls in.
    """
    height, width = shape
    v, u = np.mgrid[0:height, 0:width]
    x = (u + 0.5 - K[0, 2]) / K[0, 0]
    y = (v + 0.5 - K[1, 2]) / K[1, 1]
    du = np.floor(depth_K[0, 0] * x + depth_K[0, 2]).astype(np.int64)
    dv = np.floor(depth_K[1, 1] * y + depth_K[1, 2]).astype(np.int64)
    inside = (du >= 0) & (du < depth.shape[1]) & (dv >= 0) & (dv < depth.shape[0])
    z = np.zeros(shape, dtype=np.float64)
    z[inside] = depth[dv[inside], du[inside]]
    camera = np.stack([x * z, y * z, z], axis=-1)  # [H, W, 3]
    world_z = camera @ np.asarray(c2w, dtype=np.float64)[2, :3] + c2w[2, 3]
    return np.where(z > 0, world_z, np.nan)


def background_classes(frame: FrameInput, tolerance: float = FLOOR_TOLERANCE) -> np.ndarray:
    """[H, W] int32 over the background pixels (``instance`` -1): 0 = wall, 1 = floor (surface within
    ``tolerance`` of z = 0), -1 = an object or no depth (nothing there to segment).

    Raises:
        PseudoLabelError: the frame has no depth, depth intrinsics or pose.
    """
    if frame.depth is None or frame.depth_K is None or frame.c2w is None:
        raise PseudoLabelError(
            f"scene {frame.scene_id} frame {frame.name}: wall and floor segments need the frame's depth, "
            "intrinsics and pose"
        )
    heights = surface_heights(frame.instance.shape, frame.K, frame.depth, frame.depth_K, frame.c2w)
    background = (frame.instance == NO_SEGMENT) & np.isfinite(heights)
    classes = np.where(np.abs(heights) <= tolerance, 1, 0)
    return np.where(background, classes, NO_SEGMENT).astype(np.int32)


class SyntheticLabeller:
    """Instance masks (+ wall and floor) + name embeddings + noise (see the module docstring)."""

    needs_instances = True

    def __init__(
        self,
        text_encoder: TextEncoder,
        noise: NoiseConfig,
        seed: int = 0,
        text_encoder_spec: str = "minilm",
        vocabulary: Sequence[str] | None = None,
    ) -> None:
        """``noise`` holds the probabilities actually used (already scaled by the noise level);
        ``vocabulary``: the names a segment may be confused with (default ``benchmark_vocabulary()``)."""
        self.text_encoder = text_encoder
        self.noise = noise
        self.seed = seed
        self.text_encoder_spec = text_encoder_spec
        self.vocabulary = list(benchmark_vocabulary() if vocabulary is None else vocabulary)
        self._vocabulary_embeddings: np.ndarray | None = None

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
            "background": list(BACKGROUND_NAMES),
            "vocabulary": self.vocabulary,
        }

    def embed_names(self, names: list[str]) -> np.ndarray:
        """[len(names), D] float32 L2-normalised pooled text embeddings."""
        if not names:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        pooled = self.text_encoder.encode(names).pooled.float()
        return torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()

    @property
    def vocabulary_embeddings(self) -> np.ndarray:
        """[V, D] embeddings of ``vocabulary`` (computed once)."""
        if self._vocabulary_embeddings is None:
            self._vocabulary_embeddings = self.embed_names(self.vocabulary)
        return self._vocabulary_embeddings

    def clean_segments(self, frame: FrameInput) -> tuple[np.ndarray, list[str]]:
        """The noise-free segments: ([H, W] int32 ids 0..S-1, -1 = none; the S segment names).

        Objects come first in object-id order, then wall and floor when the frame has depth and pose.
        """
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
        first_background = int(instance.max(initial=-1)) + 1
        names = {int(i): frame.object_names[int(i)] for i in object_ids}
        if frame.depth is not None:
            background = background_classes(frame)
            instance = np.where(background >= 0, first_background + background, instance)
            names.update({first_background + k: name for k, name in enumerate(BACKGROUND_NAMES)})
        segment_map, ids = compact(instance, np.arange(first_background + len(BACKGROUND_NAMES)))
        return segment_map, [names[int(i)] for i in ids]

    def label(self, frame: FrameInput) -> PseudoLabels:
        segment_map, names = self.clean_segments(frame)
        embeddings = self.embed_names(names)
        if not self.noise.is_clean:
            stream = frame_rng(self.seed, frame.scene_id, frame.name, EMBEDDING_STREAM)
            embeddings = perturb_embeddings(embeddings, self.vocabulary_embeddings, self.noise, stream)
            rng = frame_rng(self.seed, frame.scene_id, frame.name)
            segment_map, embeddings = apply_noise(segment_map, embeddings, self.noise, rng)
        return PseudoLabels(
            segment_map=segment_map,
            embeddings=embeddings,
            scores=np.ones(len(embeddings), dtype=np.float32),
            meta={"labeller": "synthetic"},
        )
