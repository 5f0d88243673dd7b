"""SAM automatic mask generation through ``transformers``' ``SamModel`` + ``SamProcessor``.

The stages (those of SAM's automatic mask generator and of transformers' "mask-generation" pipeline, for
one crop covering the whole image): a regular grid of ``points_per_side``² point prompts; the image is
embedded once; each batch of points decodes three candidate masks per point; candidates are kept when the
predicted IoU exceeds ``pred_iou_thresh`` and the stability score (IoU of the mask binarised at
``mask_threshold ± stability_score_offset``) exceeds ``stability_score_thresh``; duplicates are removed by
non-maximum suppression on the masks' boxes (``nms_thresh``). The ``SamImageProcessor`` methods that do
each stage are transformers' own.

Weights are read from a local folder (``save_pretrained`` layout) or, by hub name, from the local
Hugging Face cache only (``local_files_only``): nothing is downloaded, so ``HF_HUB_OFFLINE=1`` is fine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from liftgs.pseudo.labeller import WeightsNotFoundError


@dataclass(frozen=True)
class SamSettings:
    """Automatic mask generation settings (defaults: SAM's own)."""

    points_per_side: int = 32
    """Point prompts per image side (a points_per_side x points_per_side grid)."""
    points_per_batch: int = 64
    """Prompts decoded together; lower it to save memory (each holds 3 full-size float masks)."""
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    nms_thresh: float = 0.7
    """Box IoU above which the lower-scoring of two masks is dropped."""


def load_sam(spec: str, device: torch.device | str = "cpu"):
    """``(SamModel, SamProcessor)`` from a local folder or a hub name held in the local HF cache.

    Raises:
        WeightsNotFoundError: neither is available locally (one line saying how to get them).
    """
    from huggingface_hub.constants import HF_HUB_CACHE
    from transformers import SamModel, SamProcessor

    try:
        model = SamModel.from_pretrained(spec, local_files_only=True)
        processor = SamProcessor.from_pretrained(spec, local_files_only=True)
    except (OSError, ValueError) as error:
        raise WeightsNotFoundError(
            f"--sam {spec!r}: SAM weights are not available locally (not a save_pretrained folder, not "
            f"in the Hugging Face cache {HF_HUB_CACHE}: {type(error).__name__}); fetch them where there is "
            "internet, e.g. `huggingface-cli download facebook/sam-vit-base`, or pass a local folder"
        ) from None
    return model.to(device).eval(), processor


class SamMaskGenerator:
    """Proposes masks for a whole image with a SAM model (see the module docstring)."""

    def __init__(self, model, processor, settings: SamSettings | None = None) -> None:
        """``model``: a ``transformers.SamModel``; ``processor``: its ``SamProcessor``."""
        self.model = model.eval()
        self.processor = processor
        self.settings = settings or SamSettings()

    @classmethod
    def load(cls, spec: str, settings: SamSettings | None = None, device: str = "cpu") -> SamMaskGenerator:
        return cls(*load_sam(spec, device), settings)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def info(self) -> dict:
        return asdict(self.settings)

    @torch.no_grad()
    def generate(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Masks of ``image`` [H, W, 3] uint8.

        Returns:
            masks: [N, H, W] bool, possibly overlapping, N >= 0.
            scores: [N] float32 predicted IoU of each mask.
        """
        s = self.settings
        image_processor = self.processor.image_processor
        target = image_processor.size.get("longest_edge", image_processor.size.get("height"))
        crop_boxes, points, crops, labels = image_processor.generate_crop_boxes(
            image, target, crop_n_layers=0, points_per_crop=s.points_per_side
        )  # points [1, P, 1, 2] in the resized frame, labels [1, P, 1]
        inputs = image_processor(images=crops, return_tensors="pt")
        image_embeddings = self.model.get_image_embeddings(inputs["pixel_values"].to(self.device))
        original_size = inputs["original_sizes"][0].tolist()
        kept_masks, kept_scores, kept_boxes = [], [], []
        for start in range(0, points.shape[1], s.points_per_batch):
            stop = start + s.points_per_batch
            outputs = self.model(
                image_embeddings=image_embeddings,
                input_points=points[:, start:stop].to(self.device),
                input_labels=labels[:, start:stop].to(self.device),
                multimask_output=True,
            )  # pred_masks [1, p, 3, h, w] logits, iou_scores [1, p, 3]
            logits = image_processor.post_process_masks(
                outputs.pred_masks.cpu(),
                inputs["original_sizes"],
                inputs["reshaped_input_sizes"],
                mask_threshold=s.mask_threshold,
                binarize=False,
            )[0]  # [p, 3, H, W]
            rle, scores, boxes = image_processor.filter_masks(
                logits,
                outputs.iou_scores[0].cpu(),
                original_size,
                crop_boxes[0],
                pred_iou_thresh=s.pred_iou_thresh,
                stability_score_thresh=s.stability_score_thresh,
                mask_threshold=s.mask_threshold,
                stability_score_offset=s.stability_score_offset,
            )
            kept_masks += rle
            kept_scores.append(scores)
            kept_boxes.append(boxes)
        height, width = image.shape[:2]
        if not kept_masks:
            return np.zeros((0, height, width), dtype=bool), np.zeros(0, dtype=np.float32)
        masks, scores, _, _ = image_processor.post_process_for_mask_generation(
            kept_masks, torch.cat(kept_scores), torch.cat(kept_boxes), s.nms_thresh
        )
        return np.stack(masks).astype(bool), scores.float().numpy()
