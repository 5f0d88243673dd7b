"""The shared RGB-D frame readers: depth units, frame listing, skip reports."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liftgs.data.rgbd_io import FrameSkipped, SkipCounter, find_frame_names, read_depth_image


def test_millimetre_depth_is_exactly_value_over_1000(tmp_path):
    millimetres = np.arange(1 << 16, dtype=np.uint16).reshape(256, 256)  # every uint16 value
    Image.fromarray(millimetres).save(tmp_path / "depth.png")
    depth = read_depth_image(tmp_path / "depth.png", 1e-3)
    assert depth.dtype == np.float32
    np.testing.assert_array_equal(depth, millimetres.astype(np.float32) / 1000.0)
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "zero.png")
    with pytest.raises(FrameSkipped, match="all-zero depth"):
        read_depth_image(tmp_path / "zero.png", 1e-3)
    with pytest.raises(FrameSkipped, match="missing depth"):
        read_depth_image(tmp_path / "none.png", 1e-3)


def test_frame_names_are_the_union_in_numeric_order(tmp_path):
    for folder, files in {"color": ["10.jpg", "2.jpg", "b.jpg", "x.txt"], "pose": ["1.txt", "2.txt"]}.items():
        (tmp_path / folder).mkdir()
        for name in files:
            (tmp_path / folder / name).touch()
    suffixes = {"color": (".jpg",), "pose": (".txt",), "depth": (".png",)}  # no depth folder: ignored
    assert find_frame_names(tmp_path, suffixes) == ["1", "2", "10", "b"]


def test_skips_are_reported_in_one_line_or_raised_when_nothing_is_left(caplog):
    skips = SkipCounter()
    skips.add("non-finite pose", 2)
    skips.add("missing depth")
    with caplog.at_level(logging.WARNING):
        skips.report(["frame"] * 3, ValueError, logging.getLogger("test"), "scene0000_00", Path("/data/s"))
        skips.report(["frame"] * 3, ValueError, logging.getLogger("test"), "/data/s")
    assert caplog.messages == [
        "scene0000_00: skipped 3 of 6 frames in /data/s (2 non-finite pose, 1 missing depth)",
        "/data/s: skipped 3 of 6 frames (2 non-finite pose, 1 missing depth)",
    ]
    with pytest.raises(
        ValueError, match=r"^s1: no usable frame among 3 in /d \(2 non-finite pose, 1 missing"
    ):
        skips.report([], ValueError, logging.getLogger("test"), "s1", Path("/d"))
    SkipCounter().report(["frame"], ValueError, logging.getLogger("test"), "s1")  # nothing skipped: silent
    assert len(caplog.messages) == 2
