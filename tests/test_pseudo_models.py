"""SAM + CLIP wiring with tiny randomly initialised models saved to disk (no downloads)."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

from liftgs.pseudo.clip import ClipSegmentEmbedder, load_open_clip
from liftgs.pseudo.command import PseudoLabelCommand
from liftgs.pseudo.foundation import FoundationLabeller
from liftgs.pseudo.labeller import FrameInput, WeightsNotFoundError
from liftgs.pseudo.sam import SamMaskGenerator, SamSettings, load_sam
from liftgs.pseudo.segments import NO_SEGMENT, load_pseudo_labels

KEEP_ALL = SamSettings(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
"""A random SAM predicts poor masks: keep every candidate so the wiring is exercised."""

CLIP_DIM = 24


@pytest.fixture(scope="module")
def sam_dir(tmp_path_factory):
    """A tiny SamModel + SamProcessor (64 px input) saved with save_pretrained."""
    torch.manual_seed(0)
    config = SamConfig(
        vision_config=dict(
            hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2, image_size=64,
            patch_size=8, window_size=4, global_attn_indexes=[1], mlp_dim=64, num_pos_feats=8,
        ),
        prompt_encoder_config=dict(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(
            hidden_size=16, mlp_dim=32, num_hidden_layers=1, num_attention_heads=2, iou_head_hidden_dim=16
        ),
    )  # fmt: skip
    path = tmp_path_factory.mktemp("sam")
    SamModel(config).save_pretrained(path)
    processor = SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    SamProcessor(image_processor=processor).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clip_spec(tmp_path_factory):
    """``config.json:checkpoint.pt`` of a tiny open_clip model with random weights."""
    path = tmp_path_factory.mktemp("clip")
    config = {
        "embed_dim": CLIP_DIM,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
    }
    (path / "tiny-clip-test.json").write_text(json.dumps(config))
    open_clip.add_model_config(path / "tiny-clip-test.json")
    torch.manual_seed(0)
    torch.save(open_clip.create_model("tiny-clip-test").state_dict(), path / "weights.pt")
    return f"{path / 'tiny-clip-test.json'}:{path / 'weights.pt'}"


@pytest.fixture
def image():
    return (np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)


def test_sam_masks_have_the_frame_size(sam_dir, image):
    masks, scores = SamMaskGenerator.load(str(sam_dir), KEEP_ALL).generate(image)
    assert masks.dtype == bool and masks.ndim == 3 and masks.shape[1:] == (30, 40)
    assert len(masks) >= 1 and scores.shape == (len(masks),)


def test_sam_returning_nothing_gives_empty_labels(sam_dir, clip_spec, image):
    strict = SamSettings(points_per_side=4, stability_score_thresh=1.5)  # no mask can pass
    sam = SamMaskGenerator.load(str(sam_dir), strict)
    masks, _ = sam.generate(image)
    assert masks.shape == (0, 30, 40)
    labels = FoundationLabeller(sam, ClipSegmentEmbedder.load(clip_spec)).label(FrameInput("s", "0", image))
    assert labels.num_segments == 0 and labels.embeddings.shape == (0, CLIP_DIM)
    assert labels.segment_map.shape == (30, 40) and (labels.segment_map == NO_SEGMENT).all()


def test_missing_sam_weights_are_a_one_line_error(tmp_path):
    for spec in ("facebook/sam-vit-base", str(tmp_path / "nothing-here")):
        with pytest.raises(WeightsNotFoundError, match="not available locally") as error:
            load_sam(spec)
        assert "\n" not in str(error.value)


def test_clip_segment_embeddings_are_normalised_and_per_segment(clip_spec, image):
    embedder = ClipSegmentEmbedder.load(clip_spec)
    segment_map = np.full((30, 40), NO_SEGMENT)
    segment_map[2:10, 2:10] = 0
    segment_map[12:28, 5:38] = 1
    segment_map[20:30, 0:4] = 2
    embeddings = embedder.embed_segments(image, segment_map)
    assert embeddings.shape == (3, CLIP_DIM) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert np.abs(embeddings[0] - embeddings[1]).max() > 1e-4


def test_a_single_segment_gets_the_global_embedding(clip_spec, image):
    """ConceptFusion fusion: softmax over one segment is 1, so the fused embedding is the global one."""
    embedder = ClipSegmentEmbedder.load(clip_spec)
    segment_map = np.full((30, 40), NO_SEGMENT)
    segment_map[5:15, 5:15] = 0
    fused = embedder.embed_segments(image, segment_map)
    global_ = embedder.embed_images([Image.fromarray(image)]).numpy()
    np.testing.assert_allclose(fused, global_, atol=1e-5)


def test_clip_weights_not_in_the_cache_are_a_one_line_error():
    with pytest.raises(WeightsNotFoundError, match="not in the local cache"):
        load_open_clip("ViT-B-32:laion2b_s34b_b79k")
    with pytest.raises(WeightsNotFoundError, match="pretrained tag"):
        load_open_clip("ViT-B-32:no_such_tag")
    with pytest.raises(ValueError, match="MODEL:PRETRAINED"):
        load_open_clip("ViT-B-32")


def test_pseudo_label_command_with_sam_and_clip(sam_dir, clip_spec, tmp_path, image):
    """An image-only dataset: SAM + CLIP labels are written beside each frame, at the frame's size."""
    color = tmp_path / "scans/scene0000_00/color"
    color.mkdir(parents=True)
    for name in ("0", "1"):
        Image.fromarray(image).save(color / f"{name}.jpg")
    command = PseudoLabelCommand(
        data=tmp_path, sam=str(sam_dir), clip=clip_spec, sam_settings=KEEP_ALL, min_area=1, progress=False
    )
    command.main()
    for name in ("0", "1"):
        labels = load_pseudo_labels(tmp_path / "scans/scene0000_00", name, expected_dim=CLIP_DIM)
        assert labels.segment_map.shape == (30, 40) and labels.num_segments >= 1
        assert labels.meta["labeller"] == "sam+clip"
