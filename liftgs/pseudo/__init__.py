"""2D pseudo-labels for pretraining: segments of each frame with one embedding per segment.

- ``segments``: ``PseudoLabels``, the on-disk format, ``load_pseudo_labels`` (what pretraining reads).
- ``sam`` / ``clip`` / ``foundation``: SAM automatic masks + ConceptFusion-style CLIP segment embeddings.
- ``synthetic`` + ``noise``: the embedded benchmark's stand-in (instance masks, name embeddings, noise).
- ``command``: ``liftgs pseudo-label`` (resumable, sharded, counted).
- ``lift`` + ``lift_dataset``: segment embeddings (stored, or the embedded benchmark's stand-in run in
  memory) lifted onto the points, the encoder's optional input; ``liftgs lift-features`` alone writes them.
"""

from liftgs.pseudo.segments import (
    NO_SEGMENT,
    PseudoLabelError,
    PseudoLabels,
    load_pseudo_labels,
    pseudo_path,
    read_pseudo_labels,
    save_pseudo_labels,
)

__all__ = [
    "NO_SEGMENT",
    "PseudoLabelError",
    "PseudoLabels",
    "load_pseudo_labels",
    "pseudo_path",
    "read_pseudo_labels",
    "save_pseudo_labels",
]
