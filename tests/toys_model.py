"""Toys shared by the network tests: a deterministic hash text encoder and a tiny LiftGS that uses it."""

from __future__ import annotations

import hashlib

import torch

from liftgs.model import DecoderConfig, EncoderConfig, GaussianConfig, LiftGS, LiftGSConfig, TextEncoder

VOXEL = 0.1


class HashTextEncoder(TextEncoder):
    """Deterministic stand-in text encoder: each word's embedding is seeded by its hash."""

    def __init__(self, dim: int = 24) -> None:
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


def tiny_config(**gaussians) -> LiftGSConfig:
    return LiftGSConfig(
        voxel_size=VOXEL,
        max_points=400,
        text_encoder="hash",
        text_dim=24,
        encoder=EncoderConfig(
            enc_channels=(16, 32),
            enc_depths=(2, 1),
            dec_channels=(16,),
            dec_depths=(1,),
            head_dim=8,
            patch_size=32,
        ),
        decoder=DecoderConfig(
            d_model=32, num_queries=4, num_layers=2, num_heads=2, align_dim=16, color_channels=8
        ),
        gaussians=GaussianConfig(**gaussians),
    )


def tiny_model(seed: int = 0, **gaussians) -> LiftGS:
    torch.manual_seed(seed)
    return LiftGS(tiny_config(**gaussians), text_encoder=HashTextEncoder())
