"""The viewer's "Export selection": the grounded Gaussians as a standard 3DGS ``.ply`` plus a JSON record.

JSON fields: ``scene_id``, ``query``, ``negatives``, ``candidate`` (label), ``query_index``, ``score``,
``threshold``, ``box`` (``[xmin, ymin, zmin, xmax, ymax, zmax]`` world metres, the selected scene points'
axis-aligned box), ``num_gaussians``, ``gaussian_indices`` (into the scene's predicted Gaussians, the rows
of the ``.ply``), ``point_indices`` (into the scene's input point cloud) and ``ply`` (the file name).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from app.engine import Candidate, GroundingResult, LoadedScene
from liftgs.export_ply import write_gaussians_ply


def export_stem(scene_id: str, query: str) -> str:
    """File stem ``<scene>_<query slug>`` (lowercase letters, digits and dashes, at most 40 characters)."""
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")[:40].strip("-") or "query"
    return f"{scene_id}_{slug}"


def export_selection(
    out_dir: Path,
    loaded: LoadedScene,
    result: GroundingResult,
    candidate: Candidate,
    threshold: float,
) -> tuple[Path, Path]:
    """Writes ``<stem>.ply`` and ``<stem>.json`` into ``out_dir``; returns both paths.

    Raises:
        ValueError: no Gaussian reaches ``threshold`` (nothing to export).
    """
    grounded = loaded.grounded(candidate.point_probs, threshold)
    gaussian_mask = loaded.gaussian_values(grounded)
    if not gaussian_mask.any():
        raise ValueError(f"nothing to export: no Gaussian reaches the threshold {threshold:.2f}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = export_stem(result.scene_id, result.text)
    ply_path, json_path = out_dir / f"{stem}.ply", out_dir / f"{stem}.json"
    count = write_gaussians_ply(ply_path, loaded.features.gaussians, mask=gaussian_mask)
    box = loaded.box(grounded)
    record = {
        "scene_id": result.scene_id,
        "query": result.text,
        "negatives": list(result.negatives),
        "candidate": candidate.label,
        "query_index": candidate.query_index,
        "score": candidate.score,
        "threshold": threshold,
        "box": None if box is None else [float(v) for v in box],
        "num_gaussians": count,
        "gaussian_indices": np.flatnonzero(gaussian_mask).tolist(),
        "point_indices": np.flatnonzero(loaded.point_mask(grounded)).tolist(),
        "ply": ply_path.name,
    }
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    return ply_path, json_path
