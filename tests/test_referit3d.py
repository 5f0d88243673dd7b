"""ScanRefer JSON and ReferIt3D (Sr3D / Nr3D) CSV parsing, eval_type and ReferIt3D's flags."""

import csv
import json
import logging

import pytest

from liftgs.data.referit3d import (
    AnnotationError,
    eval_type_of,
    is_view_dependent,
    load_referit3d,
    load_scanrefer,
    stimulus_class_count,
)
from liftgs.data.store import DatasetError

LABELS = {
    "scene0000_00": {0: "chair", 1: "table", 2: "Chair", 3: "trash can"},
    "scene0001_00": {0: "bed"},
}


def write_scanrefer(path, records):
    path.write_text(json.dumps(records))
    return path


def scanrefer_record(scene_id="scene0000_00", object_id="0", object_name="chair", ann_id="0"):
    return {
        "scene_id": scene_id,
        "object_id": object_id,
        "object_name": object_name,
        "ann_id": ann_id,
        "description": "the chair next to the table.",
        "token": ["the", "chair", "next", "to", "the", "table", "."],
    }


def test_scanrefer_fields_and_eval_type(tmp_path):
    path = write_scanrefer(
        tmp_path / "ScanRefer_filtered_val.json",
        [
            scanrefer_record(),
            scanrefer_record(object_id="3", object_name="trash_can", ann_id="4"),
            scanrefer_record(scene_id="scene0001_00", object_name="bed"),
        ],
    )
    expressions = load_scanrefer(path, LABELS)
    first = expressions[0]
    assert (first.scene_id, first.object_id, first.object_name, first.ann_id) == (
        "scene0000_00",
        0,
        "chair",
        0,
    )
    assert first.token == ["the", "chair", "next", "to", "the", "table", "."]
    assert first.description == "the chair next to the table."
    # Two chairs (case-insensitive) -> multiple; one trash can (underscore = space) -> unique.
    assert [e.eval_type for e in expressions] == ["multiple", "unique", "unique"]
    assert expressions[1].ann_id == 4 and expressions[1].object_name == "trash can"


def test_scanrefer_scene_filter(tmp_path):
    path = write_scanrefer(
        tmp_path / "a.json", [scanrefer_record(), scanrefer_record(scene_id="scene0999_00")]
    )
    kept = load_scanrefer(path, LABELS, scene_ids={"scene0000_00"})
    assert [e.scene_id for e in kept] == ["scene0000_00"]


def test_scanrefer_errors_name_file_and_record(tmp_path):
    path = write_scanrefer(tmp_path / "refs.json", [scanrefer_record(), scanrefer_record(object_id="9")])
    with pytest.raises(
        AnnotationError, match=r"refs.json record 1: object 9 not found in scene scene0000_00"
    ):
        load_scanrefer(path, LABELS)
    write_scanrefer(path, [scanrefer_record(scene_id="scene0999_00")])
    with pytest.raises(AnnotationError, match=r"refs.json record 0: unknown scene id 'scene0999_00'"):
        load_scanrefer(path, LABELS)
    write_scanrefer(path, [{"scene_id": "scene0000_00"}])
    with pytest.raises(AnnotationError, match=r"refs.json record 0: malformed ScanRefer record"):
        load_scanrefer(path, LABELS)
    path.write_text("{not json")
    with pytest.raises(DatasetError, match=r"cannot parse .*refs.json"):
        load_scanrefer(path, LABELS)


def test_category_mismatch_warns_once_and_uses_the_aggregation_label(tmp_path, caplog):
    path = write_scanrefer(
        tmp_path / "refs.json",
        [
            scanrefer_record(object_id="1", object_name="desk"),
            scanrefer_record(object_id="1", object_name="desk"),
        ],
    )
    with caplog.at_level(logging.WARNING, logger="liftgs.data.referit3d"):
        expressions = load_scanrefer(path, LABELS)
    assert [e.eval_type for e in expressions] == ["unique", "unique"]  # the table is unique
    assert len(caplog.records) == 1 and "2 record(s)" in caplog.messages[0]


def write_csv(path, rows, columns=None):
    columns = columns or list(rows[0])
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def referit_row(target_id, utterance, stimulus_id, instance_type="chair", **extra):
    return {
        "scan_id": "scene0000_00",
        "target_id": str(target_id),
        "instance_type": instance_type,
        "utterance": utterance,
        "tokens": str(utterance.lower().split()),
        "stimulus_id": stimulus_id,
        "distractor_ids": "[]",
        **extra,
    }


def test_sr3d_rows_flags_and_ann_ids(tmp_path):
    path = write_csv(
        tmp_path / "sr3d_train.csv",
        [
            referit_row(
                0,
                "the chair on the left of the table",
                "scene0000_00-chair-2-0-2",
                anchor_ids="[1]",
                reference_type="left",
            ),
            referit_row(2, "the chair far from the bed", "scene0000_00-chair-4-2-0-5-6"),
            referit_row(0, "the chair close to the table", "scene0000_00-chair-2-0-2"),
        ],
    )
    records = load_referit3d(path, LABELS)
    assert [r.expression.object_id for r in records] == [0, 2, 0]
    assert [r.expression.ann_id for r in records] == [0, 0, 1]
    assert [r.hard for r in records] == [False, True, False]
    assert [r.view_dependent for r in records] == [True, False, False]
    assert all(r.expression.eval_type == "multiple" for r in records)
    assert records[0].expression.token == ["the", "chair", "on", "the", "left", "of", "the", "table"]
    assert records[0].stimulus_id == "scene0000_00-chair-2-0-2"
    assert records[0].mentions_target_class is None
    assert records[0].expression.anchor_ids == (1,) and records[1].expression.anchor_ids == ()
    assert [r.expression.relation for r in records] == ["left", None, None]


def test_nr3d_mentions_target_class_and_missing_optional_columns(tmp_path):
    row = referit_row(3, "The trash can facing the door", "", instance_type="trash can")
    row.update(mentions_target_class="True")
    del row["tokens"], row["stimulus_id"]
    path = write_csv(tmp_path / "nr3d.csv", [row])
    (record,) = load_referit3d(path, LABELS)
    assert record.mentions_target_class is True
    assert record.hard is None and record.view_dependent is True  # "facing", read from the utterance
    assert record.expression.eval_type == "unique"


def test_referit3d_errors(tmp_path):
    path = write_csv(
        tmp_path / "sr3d.csv", [referit_row(0, "x", "scene0000_00-chair-2-0-2")], ["scan_id", "utterance"]
    )
    with pytest.raises(AnnotationError, match=r"sr3d.csv: missing column\(s\) target_id, instance_type"):
        load_referit3d(path, LABELS)
    write_csv(path, [referit_row(8, "x", "scene0000_00-chair-2-8-2")])
    with pytest.raises(AnnotationError, match=r"sr3d.csv row 2: object 8 not found in scene scene0000_00"):
        load_referit3d(path, LABELS)
    write_csv(path, [referit_row(0, "x", "scene0000_00-chair-3-0-2")])  # 3 objects but 1 distractor
    with pytest.raises(AnnotationError, match=r"sr3d.csv row 2: malformed ReferIt3D row"):
        load_referit3d(path, LABELS)
    write_csv(path, [referit_row(0, "x", "scene0000_00-chair-2-0-2", anchor_ids="the table")])
    with pytest.raises(AnnotationError, match=r"sr3d.csv row 2: malformed ReferIt3D row"):
        load_referit3d(path, LABELS)
    with pytest.raises(AnnotationError, match=r"annotation file not found: .*nope.csv"):
        load_referit3d(tmp_path / "nope.csv", LABELS)


def test_stimulus_and_view_dependence_helpers():
    assert stimulus_class_count("scene0525_00-plant-2-12-13") == 2
    assert stimulus_class_count("scene0000_00-t-shirt-3-4-5-6") == 3  # a class name holding "-"
    with pytest.raises(ValueError):
        stimulus_class_count("scene0000_00-chair")
    assert is_view_dependent(["the", "Leftmost", "chair"]) and not is_view_dependent(["the", "red", "chair"])
    assert eval_type_of({0: "chair", 1: "chair_"}, 0) == "multiple"
