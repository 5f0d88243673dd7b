"""The fixed random projection that narrows 2D foundation embeddings to the width of lifted point features.

Lifted point features (``liftgs.pseudo.lift``) store each point's embedding through this projection; the
lifted affinity (``liftgs.model.affinity``) projects the text encoder's tokens through the same one, so both
meet in the same space. Rebuilt from ``(embedding_dim, feature_dim, seed)`` wherever it is needed.
"""

from __future__ import annotations

import torch
from torch import Tensor


def feature_projection(embedding_dim: int, feature_dim: int, seed: int = 0) -> Tensor | None:
    """[D, F] map of embeddings to a narrower width: None when F = 0, the identity when F = D, else a fixed
    Gaussian random projection (Johnson-Lindenstrauss: cosines between embeddings are roughly kept)."""
    if feature_dim == 0:
        return None
    if feature_dim == embedding_dim:
        return torch.eye(embedding_dim)
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(embedding_dim, feature_dim, generator=generator) / feature_dim**0.5
