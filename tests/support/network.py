"""The tests' one tiny network: its config, a deterministic stand-in text encoder, a saved checkpoint, and
text features made directly from token tensors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from liftgs.model import DecoderConfig, EncoderConfig, GaussianConfig, LiftGS, LiftGSConfig, TextEncoder
from liftgs.model import save_checkpoint as _save_checkpoint
from liftgs.model.types import TextFeatures

VOXEL = 0.1
"""The tiny network's voxel edge in metres (``toy_scene`` lays its points out for it)."""
TEXT_DIM = 384
"""Width of the tiny network's text tokens: MiniLM's, so that the real text encoder fits it too."""


def text_features(
    tokens: torch.Tensor, mask: torch.Tensor, pooled: torch.Tensor | None = None
) -> TextFeatures:
    """TextFeatures of tokens [B, T, Dt] and mask [B, T] that name no color (pooled: [B, Dt], default the
    mean token; token strings empty)."""
    return TextFeatures(
        tokens=tokens,
        mask=mask,
        pooled=tokens.mean(1) if pooled is None else pooled,
        token_strings=[[] for _ in range(tokens.shape[0])],
        word_colors=torch.zeros(*tokens.shape[:2], 3),
        named_color=torch.zeros(tokens.shape[:2], dtype=torch.bool),
    )


def tiny_config() -> LiftGSConfig:
    """A LiftGS small enough to encode a toy scene in well under a second on a CPU: the default network's
    options, small widths, one block per stage, two decoder layers, four queries, at most 800 voxels, and no
    token noise (so that two training-mode passes over the same batch agree; the tests that need the noise
    turn it on)."""
    return LiftGSConfig(
        voxel_size=VOXEL,
        max_points=800,
        text_dim=TEXT_DIM,
        encoder=EncoderConfig(
            enc_channels=(16, 32), enc_depths=(1, 1), dec_channels=(16,), dec_depths=(1,), head_dim=8,
            patch_size=32,
        ),
        decoder=DecoderConfig(
            d_model=32, point_dim=16, num_queries=4, num_layers=2, num_heads=2, align_dim=16, token_noise=0.0
        ),
        gaussians=GaussianConfig(hidden=16),
    )  # fmt: skip


class HashTextEncoder(TextEncoder):
    """Deterministic stand-in text encoder: each word's embedding is a normal vector seeded by its hash.

    ``calls`` counts the batches it encoded (the text cache's tests read it)."""

    def __init__(self, dim: int = TEXT_DIM) -> None:
        super().__init__(torch.nn.Linear(1, 1), dim=dim, max_length=16)
        self.calls = 0

    def _encode_batch(self, texts: list[str]):
        self.calls += 1
        out = []
        for text in texts:
            words = text.split()[: self.max_length]
            seeds = [int(hashlib.md5(w.encode()).hexdigest()[:8], 16) for w in words]
            tokens = torch.stack(
                [torch.randn(self.dim, generator=torch.Generator().manual_seed(s)) for s in seeds]
            )
            out.append((tokens, tokens.mean(0), words))
        return out


def save_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """A freshly initialised tiny network (MiniLM text encoder, built when first used) saved at ``path``."""
    torch.manual_seed(seed)
    return _save_checkpoint(path, LiftGS(tiny_config()), {"step": 0})
