"""Referring expressions over ScanNet: ScanRefer JSON and ReferIt3D (Sr3D / Nr3D) CSV -> ``Expression``.

Both datasets name a target by ``(scene id, object id)`` where the object id is the ``objectId`` of the
scene's ScanNet aggregation (``<id>.aggregation.json``). The loaders take the scenes' object labels
(``scene_id -> {object_id: category label}``, e.g. from ``liftgs.data.scannet.read_object_labels``) to
check that every target exists and to compute ``eval_type`` the ScanRefer way: "unique" when the
target's category occurs once among the scene's annotated objects, else "multiple" (categories compared
case-insensitively, with ``_`` read as a space).

ReferIt3D's own splits are kept alongside each expression (``ReferIt3DAnnotation``): "hard" when the
scene holds more than two objects of the target's fine-grained class (the count encoded in
``stimulus_id``), and "view-dependent" when the tokens contain one of ReferIt3D's view-dependent words.

Errors (``AnnotationError``) are one line naming the file and the record: unknown scene id, target object
missing from the scene, malformed record or missing column. An annotation whose category name disagrees
with the aggregation label of its target is kept (the label decides ``eval_type``) and counted in one
warning line per file.
"""

from __future__ import annotations

import ast
import csv
import logging
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from liftgs.data.store import DatasetError, read_json
from liftgs.scene import EvalType, Expression

log = logging.getLogger(__name__)

SceneLabels = Mapping[str, Mapping[int, str]]
"""scene_id -> object_id -> category label (the aggregation's segGroup labels)."""

VIEW_DEPENDENT_WORDS = frozenset(
    {"front", "behind", "back", "right", "left", "facing", "leftmost", "rightmost", "looking", "across"}
)
"""Tokens that make a ReferIt3D utterance "view-dependent" (ReferIt3D's evaluation split)."""

REFERIT3D_COLUMNS = ("scan_id", "target_id", "instance_type", "utterance")
"""CSV columns every Sr3D / Nr3D file must have; ``tokens``, ``stimulus_id``, ``mentions_target_class``,
``anchor_ids`` and ``reference_type`` (Sr3D's: "closest", "left", "supported-by", ... as
``Expression.relation``, which the relation loss and the per-relation evaluation read) are used when
present."""


class AnnotationError(DatasetError):
    """An annotation file cannot be used; the message names the file and the record."""


def normalize_category(name: str) -> str:
    """Category name compared across datasets: lower case, ``_`` as space, single spaces."""
    return " ".join(name.replace("_", " ").lower().split())


def eval_type_of(labels: Mapping[int, str], object_id: int) -> EvalType:
    """ "unique" when no other object of ``labels`` shares the category of ``object_id``, else "multiple"."""
    category = normalize_category(labels[object_id])
    same = sum(normalize_category(label) == category for label in labels.values())
    return "unique" if same == 1 else "multiple"


class _Checker:
    """Validates targets against the scene labels of one annotation file and counts name mismatches."""

    def __init__(self, source: Path, scene_labels: SceneLabels) -> None:
        self.source = source
        self.scene_labels = scene_labels
        self.mismatches: Counter[tuple[str, str]] = Counter()

    def labels(self, where: str, scene_id: str, object_id: int, category: str) -> Mapping[int, str]:
        if scene_id not in self.scene_labels:
            raise AnnotationError(f"{self.source} {where}: unknown scene id {scene_id!r}")
        labels = self.scene_labels[scene_id]
        if object_id not in labels:
            raise AnnotationError(
                f"{self.source} {where}: object {object_id} not found in scene {scene_id} "
                f"({len(labels)} annotated objects)"
            )
        if normalize_category(category) != normalize_category(labels[object_id]):
            self.mismatches[(normalize_category(category), labels[object_id])] += 1
        return labels

    def warn(self) -> None:
        if self.mismatches:
            examples = ", ".join(f"{a!r} vs {b!r}" for (a, b), _ in self.mismatches.most_common(3))
            log.warning(
                "%s: %d record(s) name a category that differs from the aggregation label (e.g. %s); "
                "the aggregation label is used",
                self.source,
                sum(self.mismatches.values()),
                examples,
            )


def load_scanrefer(
    path: Path, scene_labels: SceneLabels, scene_ids: Collection[str] | None = None
) -> list[Expression]:
    """Reads a ScanRefer JSON list (``scene_id, object_id, object_name, ann_id, description, token``).

    Args:
        scene_labels: object labels of every scene the kept records name.
        scene_ids: keep only records of these scenes (None: keep all, each must be in ``scene_labels``).

    Returns:
        the kept records, in file order, with ``eval_type`` computed from ``scene_labels``.
    """
    path = Path(path)
    records = read_json(path, AnnotationError)
    if not isinstance(records, list):
        raise AnnotationError(f"{path}: expected a JSON list of ScanRefer records")
    checker = _Checker(path, scene_labels)
    expressions = []
    for index, record in enumerate(records):
        where = f"record {index}"
        try:
            expression = Expression.from_json(record)
        except (KeyError, TypeError, ValueError) as error:
            raise AnnotationError(f"{path} {where}: malformed ScanRefer record ({error!r})") from None
        if scene_ids is not None and expression.scene_id not in scene_ids:
            continue
        labels = checker.labels(where, expression.scene_id, expression.object_id, expression.object_name)
        expressions.append(replace(expression, eval_type=eval_type_of(labels, expression.object_id)))
    checker.warn()
    return expressions


@dataclass
class ReferIt3DAnnotation:
    """One Sr3D / Nr3D row: the expression plus ReferIt3D's evaluation flags.

    Attributes:
        expression: ScanRefer-style fields; ``ann_id`` counts the rows of one target in file order.
        stimulus_id: ``<scene>-<class>-<n>-<target>-<distractors...>`` ("" when the column is absent).
        hard: more than two objects of the target's class (None without ``stimulus_id``).
        view_dependent: the tokens contain a word of ``VIEW_DEPENDENT_WORDS``.
        mentions_target_class: Nr3D's column of that name (None when absent); ReferIt3D evaluates Nr3D on
            the rows where it is True.
    """

    expression: Expression
    stimulus_id: str
    hard: bool | None
    view_dependent: bool
    mentions_target_class: bool | None


def stimulus_class_count(stimulus_id: str) -> int:
    """Number of objects of the target's class (target included) encoded in a ReferIt3D ``stimulus_id``.

    The id reads ``scene-class-count-target[-distractor...]`` with ``count - 1`` distractor ids; the class
    name may itself contain ``-``, so the count is the first field after it that fits the ids that follow.
    """
    parts = stimulus_id.split("-")
    for k in range(2, len(parts) - 1):
        if parts[k].isdigit() and int(parts[k]) == len(parts) - k - 1:
            return int(parts[k])
    raise ValueError(f"stimulus_id {stimulus_id!r} is not scene-class-count-target[-distractors]")


def is_view_dependent(tokens: Collection[str]) -> bool:
    return any(token.lower() in VIEW_DEPENDENT_WORDS for token in tokens)


def _parse_tokens(text: str) -> list[str]:
    """ReferIt3D stores tokens as a Python list literal, e.g. ``"['the', 'chair']"``."""
    tokens = ast.literal_eval(text)
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise ValueError("tokens is not a list of strings")
    return tokens


def _parse_ids(text: str) -> tuple[int, ...]:
    """Sr3D stores its anchor ids as a Python list literal, e.g. ``"[5]"`` or ``"[5, 12]"``."""
    ids = ast.literal_eval(text)
    if not isinstance(ids, list | tuple) or not all(isinstance(i, int | str) for i in ids):
        raise ValueError("anchor_ids is not a list of ids")
    return tuple(int(i) for i in ids)


def _parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0"):
        raise ValueError(f"not a boolean: {text!r}")
    return value in ("true", "1")


def _referit3d_row(
    row: dict[str, str], object_id: int, labels: Mapping[int, str], ann_id: int
) -> ReferIt3DAnnotation:
    utterance = row["utterance"]
    tokens = _parse_tokens(row["tokens"]) if row.get("tokens") else utterance.split()
    stimulus_id = row.get("stimulus_id") or ""
    mentions = row.get("mentions_target_class")
    expression = Expression(
        scene_id=row["scan_id"],
        object_id=object_id,
        object_name=row["instance_type"].replace("_", " "),
        ann_id=ann_id,
        description=utterance,
        token=tokens,
        eval_type=eval_type_of(labels, object_id),
        anchor_ids=_parse_ids(row["anchor_ids"]) if row.get("anchor_ids") else (),
        relation=row.get("reference_type") or None,
    )
    return ReferIt3DAnnotation(
        expression=expression,
        stimulus_id=stimulus_id,
        hard=stimulus_class_count(stimulus_id) > 2 if stimulus_id else None,
        view_dependent=is_view_dependent(tokens),
        mentions_target_class=_parse_bool(mentions) if mentions else None,
    )


def load_referit3d(
    path: Path, scene_labels: SceneLabels, scene_ids: Collection[str] | None = None
) -> list[ReferIt3DAnnotation]:
    """Reads a ReferIt3D Sr3D / Nr3D CSV (``scan_id, target_id, instance_type, utterance, ...``).

    Args and filtering as in ``load_scanrefer``; rows come back in file order.
    """
    path = Path(path)
    try:
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            missing = [c for c in REFERIT3D_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise AnnotationError(f"{path}: missing column(s) {', '.join(missing)}")
            rows = list(reader)
    except FileNotFoundError:
        raise AnnotationError(f"annotation file not found: {path}") from None
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        raise AnnotationError(f"cannot parse {path}: {error}") from None
    checker = _Checker(path, scene_labels)
    per_target: Counter[tuple[str, int]] = Counter()
    annotations = []
    for index, row in enumerate(rows):
        where = f"row {index + 2}"  # the header is line 1
        scene_id = row["scan_id"]
        if scene_ids is not None and scene_id not in scene_ids:
            continue
        try:
            object_id = int(row["target_id"])
        except (TypeError, ValueError):
            raise AnnotationError(
                f"{path} {where}: target_id {row['target_id']!r} is not an integer"
            ) from None
        labels = checker.labels(where, scene_id, object_id, row["instance_type"] or "")
        try:
            annotation = _referit3d_row(row, object_id, labels, per_target[(scene_id, object_id)])
        except (TypeError, ValueError, SyntaxError) as error:
            raise AnnotationError(f"{path} {where}: malformed ReferIt3D row ({error})") from None
        per_target[(scene_id, object_id)] += 1
        annotations.append(annotation)
    checker.warn()
    return annotations
