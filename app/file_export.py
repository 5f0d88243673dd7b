"""The viewer's "Export selection" for a scene file: the same files as ``liftgs ground --ply``.

Three files per export, under a fresh stem (``app.export.export_stem`` / ``reserved_stem``: never
overwriting another export): ``<stem>.json`` (``liftgs.ground_file``'s record: file-frame box and centre,
network-frame box, the transform, the selected splat indices; ``negatives`` and ``candidate`` instead of
``truncated`` and ``below_threshold``), ``<stem>.scored.ply`` (the whole file with ``liftgs_score`` and
``liftgs_mask``) and ``<stem>.selected.ply`` (the selected splats in the file's own layout). Each is written
atomically; the ones up to ``MAX_DOWNLOAD_BYTES`` are also sent to the browser as downloads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from app.engine import Candidate, GroundingResult
from app.export import export_stem, reserved_stem
from app.file_scene import FileLoadedScene
from liftgs.ground_file import splat_answer, write_file_answer

SUFFIXES = (".json", ".scored.ply", ".selected.ply")
MAX_DOWNLOAD_BYTES = 64 * 2**20
"""Larger files (the scored copy of a big scene) are written but not sent to the browser."""


@dataclass(frozen=True)
class ExportedFiles:
    """One export's files: where they were written and the contents sent as downloads.

    Attributes:
        paths: the ``.json``, ``.scored.ply`` and ``.selected.ply`` written.
        downloads: ``(file name, contents)`` of those not larger than ``MAX_DOWNLOAD_BYTES``.
        num_selected: splats in the selection.
    """

    paths: tuple[Path, ...]
    downloads: tuple[tuple[str, bytes], ...]
    num_selected: int

    def files(self) -> tuple[tuple[str, bytes], ...]:
        return self.downloads


def export_file_selection(
    out_dir: Path,
    loaded: FileLoadedScene,
    result: GroundingResult,
    candidate: Candidate,
    threshold: float,
) -> ExportedFiles:
    """Writes a new ``<stem>.json``, ``<stem>.scored.ply`` and ``<stem>.selected.ply`` into ``out_dir``.

    Raises:
        ValueError: no splat reaches ``threshold`` (nothing to export).
    """
    grounded = loaded.grounded(candidate.point_probs, threshold)  # [Pv] model voxels
    network_probs = candidate.point_probs[loaded.source_to_voxel]  # [V] network points
    fields = {
        "query": result.text,
        "negatives": list(result.negatives),
        "candidate": candidate.label,
        "score": candidate.score,
        "query_index": candidate.query_index,
        "threshold": threshold,
        "tokens": [
            {"token": token, "score": float(score)}
            for token, score in zip(result.token_strings, candidate.token_scores.tolist(), strict=False)
        ],
    }
    answer = splat_answer(loaded.user, network_probs, grounded[loaded.source_to_voxel], fields)
    if not answer.mask.any():
        raise ValueError(f"nothing to export: no splat reaches the threshold {threshold:.2f}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with reserved_stem(out_dir, export_stem(result.scene_id, result.text, time.time()), SUFFIXES) as stem:
        paths = tuple(out_dir / f"{stem}{suffix}" for suffix in SUFFIXES)
        write_file_answer(loaded.user, answer, *paths)
        downloads = tuple(
            (path.name, path.read_bytes()) for path in paths if path.stat().st_size <= MAX_DOWNLOAD_BYTES
        )
    return ExportedFiles(paths, downloads, int(answer.mask.sum()))
