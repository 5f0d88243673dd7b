"""Per-segment CLIP image embeddings (open_clip), fused with the whole image's ConceptFusion-style.

For a frame with segments ``k = 0 .. S-1``:

- global ``g`` = CLIP(whole image); local ``l_k`` = CLIP(masked crop of segment k): the segment's box,
  grown by ``crop_padding`` of its size on every side and made square, with pixels outside the segment
  filled with CLIP's mean color;
- ``w_k = softmax_k(cos(l_k, g) / temperature)`` (over the frame's segments);
- ``f_k = normalize(w_k g + (1 - w_k) l_k)``: segments that look like the whole view lean on the global
  context, distinctive ones keep their own embedding (ConceptFusion, Jatavallabhula et al. 2023).

Weights (``--clip MODEL:PRETRAINED``): ``MODEL`` is an open_clip architecture name (or a path to an
open_clip model-config JSON); ``PRETRAINED`` is a local checkpoint file or an open_clip pretrained tag whose
file is already in the local cache (the Hugging Face cache, or ``~/.cache/clip`` for URL weights). Nothing
is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from liftgs.pseudo.labeller import WeightsNotFoundError

_HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
"""open_clip's file names in a hub repository whose pretrained entry names no file."""


@dataclass(frozen=True)
class ClipSettings:
    crop_padding: float = 0.1
    """Margin added around a segment's box, as a fraction of the box's longer side, on each side."""
    temperature: float = 1.0
    """Softmax temperature of the local-global fusion weights."""
    batch_size: int = 32


def _cached_pretrained_file(model_name: str, tag: str) -> tuple[str, dict]:
    """The local file of open_clip pretrained ``tag`` of ``model_name`` and its pretrained config."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        listed = ", ".join(tags[:6]) + (", ..." if len(tags) > 6 else "") if tags else "none"
        raise WeightsNotFoundError(
            f"--clip {model_name}:{tag}: not a checkpoint file nor a pretrained tag of {model_name} "
            f"(tags: {listed})"
        )
    candidates: list[str] = []
    if cfg.get("hf_hub"):
        repo, _, filename = cfg["hf_hub"].rpartition("/")  # "org/name/" or "org/name/file"
        names = (str(Path(filename).with_suffix(".safetensors")), filename) if filename else _HF_WEIGHT_FILES
        for name in names:
            found = try_to_load_from_cache(repo, name)
            if isinstance(found, str):
                candidates.append(found)
    if cfg.get("url"):
        candidates.append(str(Path("~/.cache/clip").expanduser() / Path(cfg["url"]).name))
    for candidate in candidates:
        if Path(candidate).is_file():
            return candidate, cfg
    raise WeightsNotFoundError(
        f"--clip {model_name}:{tag}: weights are not in the local cache "
        f"({cfg.get('hf_hub') or cfg.get('url')}); fetch them where there is internet or pass "
        "MODEL:/path/to/checkpoint"
    )


def load_open_clip(spec: str, device: torch.device | str = "cpu"):
    """``(model, preprocess)`` for ``spec`` = ``MODEL:PRETRAINED`` (see the module docstring).

    Raises:
        ValueError: ``spec`` has no ``:PRETRAINED`` part or names an unknown model.
        WeightsNotFoundError: the weights are not available locally.
    """
    import open_clip

    model_name, _, pretrained = spec.partition(":")
    if not model_name or not pretrained:
        raise ValueError(f"--clip {spec!r}: expected MODEL:PRETRAINED, e.g. ViT-B-32:laion2b_s34b_b79k")
    if model_name.endswith(".json"):
        if not Path(model_name).is_file():
            raise WeightsNotFoundError(f"--clip {spec!r}: model config {model_name} not found")
        open_clip.add_model_config(model_name)
        model_name = Path(model_name).stem
    if open_clip.get_model_config(model_name) is None:
        raise ValueError(f"--clip {spec!r}: unknown open_clip model {model_name!r}")
    cfg: dict = {}
    if Path(pretrained).is_file():
        checkpoint = pretrained
    elif "/" in pretrained or Path(pretrained).suffix:
        raise WeightsNotFoundError(f"--clip {spec!r}: checkpoint file {pretrained} not found")
    else:
        checkpoint, cfg = _cached_pretrained_file(model_name, pretrained)
    model, _, preprocess = open_clip.create_model_and_transforms(
        model_name,
        pretrained=checkpoint,
        device=device,
        force_quick_gelu=bool(cfg.get("quick_gelu", False)),
        image_mean=cfg.get("mean"),
        image_std=cfg.get("std"),
        image_interpolation=cfg.get("interpolation"),
        image_resize_mode=cfg.get("resize_mode"),
    )
    return model.eval(), preprocess


def masked_square_crop(
    image: np.ndarray,  # [H, W, 3] uint8
    mask: np.ndarray,  # [H, W] bool, not empty
    padding: float,
    fill: tuple[int, int, int],
) -> Image.Image:
    """The square around ``mask``'s box (grown by ``padding`` of its longer side per side); pixels outside
    the mask (or the image) are ``fill``."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = int(np.ceil(max(y1 - y0, x1 - x0) * (1.0 + 2.0 * padding)))
    top, left = (y0 + y1 - side) // 2, (x0 + x1 - side) // 2
    canvas = np.empty((side, side, 3), dtype=np.uint8)
    canvas[:] = fill
    in_mask_y, in_mask_x = ys - top, xs - left
    canvas[in_mask_y, in_mask_x] = image[ys, xs]
    return Image.fromarray(canvas)


class ClipSegmentEmbedder:
    """Embeds the segments of a frame with an open_clip image tower (see the module docstring)."""

    def __init__(self, model, preprocess, settings: ClipSettings | None = None) -> None:
        """``model``: an open_clip CLIP model; ``preprocess``: its evaluation transform (PIL -> [3, h, w])."""
        self.model = model.eval()
        self.preprocess = preprocess
        self.settings = settings or ClipSettings()
        mean = model.visual.preprocess_cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))
        self.fill = tuple(int(round(255 * m)) for m in mean)

    @classmethod
    def load(
        cls, spec: str, settings: ClipSettings | None = None, device: str = "cpu"
    ) -> ClipSegmentEmbedder:
        return cls(*load_open_clip(spec, device), settings)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def embedding_dim(self) -> int:
        return int(self.model.visual.output_dim)

    @torch.no_grad()
    def embed_images(self, images: list[Image.Image]) -> torch.Tensor:
        """[len(images), D] L2-normalised image embeddings."""
        out = []
        for start in range(0, len(images), self.settings.batch_size):
            batch = torch.stack(
                [self.preprocess(im) for im in images[start : start + self.settings.batch_size]]
            )
            out.append(self.model.encode_image(batch.to(self.device)).float())
        if not out:
            return torch.zeros(0, self.embedding_dim)
        return torch.nn.functional.normalize(torch.cat(out), dim=-1).cpu()

    def embed_segments(
        self,
        image: np.ndarray,  # [H, W, 3] uint8
        segment_map: np.ndarray,  # [H, W] int ids 0..S-1, -1 = none; every id present
    ) -> np.ndarray:
        """[S, D] float32 fused, L2-normalised embedding of each segment."""
        count = int(segment_map.max(initial=-1)) + 1
        if count == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        crops = [
            masked_square_crop(image, segment_map == k, self.settings.crop_padding, self.fill)
            for k in range(count)
        ]
        embeddings = self.embed_images([Image.fromarray(image), *crops])
        global_, local = embeddings[:1], embeddings[1:]  # [1, D], [S, D]
        weights = torch.softmax((local @ global_.T)[:, 0] / self.settings.temperature, dim=0)[:, None]
        fused = weights * global_ + (1.0 - weights) * local
        return torch.nn.functional.normalize(fused, dim=-1).numpy().astype(np.float32)
