"""Coloring the scene's Gaussians by a grounded mask: the selection lit up, everything else dimmed.

All arrays are per Gaussian (``G``), colors RGB float in [0, 1], opacities in [0, 1].
"""

from __future__ import annotations

import numpy as np

HIGHLIGHT_RGB = np.array([1.0, 0.42, 0.05], dtype=np.float32)
"""Color the grounded Gaussians are tinted towards (orange); the 3D box uses it too."""
DIM_RGB = 0.35
"""Brightness factor of Gaussians outside the selection."""
DIM_OPACITY = 0.25
"""Opacity factor of Gaussians outside the selection."""
MIN_TINT = 0.45
"""Tint strength of a Gaussian exactly at the threshold; it grows linearly to 1 at probability 1."""


def selected(probs: np.ndarray, threshold: float) -> np.ndarray:
    """[G] bool: the Gaussians (or points) whose mask probability reaches ``threshold``."""
    return np.asarray(probs) >= threshold


def highlight(
    colors: np.ndarray,  # [G, 3] the scene's own colors
    opacities: np.ndarray,  # [G]
    probs: np.ndarray,  # [G] mask probability of each Gaussian
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Colors and opacities that show a grounded mask.

    Gaussians with ``probs >= threshold`` keep their opacity and are tinted towards ``HIGHLIGHT_RGB``, the
    more the higher their probability; the others are darkened and made translucent.

    Returns:
        ``(colors [G, 3] float32, opacities [G] float32)``.

    Raises:
        ValueError: arrays of different lengths or a threshold outside (0, 1].
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    count = colors.shape[0]
    if opacities.shape != (count,) or probs.shape != (count,):
        raise ValueError(
            f"highlight: colors {colors.shape}, opacities {opacities.shape} and probs {probs.shape} disagree"
        )
    mask = selected(probs, threshold)
    span = max(1.0 - threshold, 1e-6)
    tint = np.where(mask, MIN_TINT + (1.0 - MIN_TINT) * np.clip((probs - threshold) / span, 0.0, 1.0), 0.0)
    tint = tint.astype(np.float32)[:, None]
    lit = (1.0 - tint) * colors + tint * HIGHLIGHT_RGB
    out_colors = np.where(mask[:, None], lit, colors * DIM_RGB).astype(np.float32)
    out_opacities = np.where(mask, opacities, opacities * DIM_OPACITY).astype(np.float32)
    return out_colors, out_opacities
