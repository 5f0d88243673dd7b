"""The paper's pseudo-labeller: SAM proposes masks, CLIP embeds each of them."""

from __future__ import annotations

import numpy as np

from liftgs.pseudo.clip import ClipSegmentEmbedder
from liftgs.pseudo.labeller import FrameInput
from liftgs.pseudo.sam import SamMaskGenerator
from liftgs.pseudo.segments import PseudoLabels, empty_labels, masks_to_segment_map


class FoundationLabeller:
    """SAM masks flattened into a segment map (smaller masks on top, segments under ``min_area`` visible
    pixels dropped), each visible segment embedded by ``ClipSegmentEmbedder``; scores are SAM's IoUs."""

    needs_instances = False

    def __init__(
        self,
        sam: SamMaskGenerator,
        clip: ClipSegmentEmbedder,
        min_area: int = 100,
        sources: dict | None = None,
    ) -> None:
        """``sources``: how the weights were named (``{"sam": ..., "clip": ...}``), recorded in ``info``."""
        self.sam = sam
        self.clip = clip
        self.min_area = min_area
        self.sources = dict(sources or {})

    @property
    def embedding_dim(self) -> int:
        return self.clip.embedding_dim

    def info(self) -> dict:
        return {
            "labeller": "sam+clip",
            **self.sources,
            "embedding_dim": self.embedding_dim,
            "min_area": self.min_area,
            "sam_settings": self.sam.info(),
            "clip_settings": {
                "crop_padding": self.clip.settings.crop_padding,
                "temperature": self.clip.settings.temperature,
            },
        }

    def label(self, frame: FrameInput) -> PseudoLabels:
        height, width = frame.image.shape[:2]
        masks, scores = self.sam.generate(frame.image)
        segment_map, kept = masks_to_segment_map(masks, self.min_area)
        if len(kept) == 0:
            return empty_labels(height, width, self.embedding_dim, {"labeller": "sam+clip"})
        return PseudoLabels(
            segment_map=segment_map,
            embeddings=self.clip.embed_segments(frame.image, segment_map),
            scores=scores[kept].astype(np.float32),
            meta={"labeller": "sam+clip"},
        )
