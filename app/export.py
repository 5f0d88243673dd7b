"""The viewer's "Export selection": the grounded Gaussians as a standard 3DGS ``.ply`` plus a JSON record.

Every export gets its own pair of files, ``<scene>_<query slug>_<query hash>_<UTC time>[-<n>]`` ``.ply`` and
``.json``: the hash tells apart queries whose slugs agree ("the desk!" and "The desk?", or any two
non-Latin queries, which both slug to ``query``), and the time plus a counter (``-2``, ``-3``, ...) tells
apart exports of the same query. A name is reserved before anything is written and never reused while
its files exist, so no export overwrites another. Both files are written atomically
(``liftgs.atomic``), and the caller gets the bytes that were written, so that a download is exactly the
file its own export produced.

JSON fields: ``scene_id``, ``query``, ``negatives``, ``candidate`` (label), ``query_index``, ``score``,
``threshold``, ``box`` (``[xmin, ymin, zmin, xmax, ymax, zmax]`` world metres, the selected scene points'
axis-aligned box), ``num_gaussians``, ``gaussian_indices`` (into the scene's predicted Gaussians, the rows
of the ``.ply``), ``point_indices`` (into the scene's input point cloud) and ``ply`` (the file name).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.engine import Candidate, GroundingResult, LoadedScene
from liftgs.atomic import atomic_path, write_bytes_atomic
from liftgs.export_ply import write_gaussians_ply

SLUG_LENGTH = 40
"""At most this many characters of the query go into a file name."""
SUFFIXES = (".ply", ".json")

_reserved: set[Path] = set()
"""Stems (``out_dir / stem``) being written right now, by any session of this process."""
_reserved_lock = threading.Lock()


@dataclass(frozen=True)
class ExportedSelection:
    """One export's two files and their exact contents.

    Attributes:
        ply_path, json_path: where they were written.
        ply_bytes, json_bytes: what was written there (what a download must send).
        num_gaussians: rows of the ``.ply``.
    """

    ply_path: Path
    json_path: Path
    ply_bytes: bytes
    json_bytes: bytes
    num_gaussians: int

    @property
    def paths(self) -> tuple[Path, Path]:
        return (self.ply_path, self.json_path)

    def files(self) -> tuple[tuple[str, bytes], ...]:
        """``(file name, contents)`` of the ``.ply`` and the ``.json``, in that order."""
        return ((self.ply_path.name, self.ply_bytes), (self.json_path.name, self.json_bytes))


def query_slug(query: str) -> str:
    """Lowercase letters, digits and dashes of ``query``, at most ``SLUG_LENGTH`` long; ``query`` if none."""
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")
    return slug[:SLUG_LENGTH].strip("-") or "query"


def export_stem(scene_id: str, query: str, when: float) -> str:
    """``<scene>_<slug>_<6 hex digits of the exact query's SHA-1>_<UTC YYYYmmdd-HHMMSS of when>``.

    Args:
        when: seconds since the epoch (``time.time()``).
    """
    digest = hashlib.sha1(query.encode("utf-8")).hexdigest()[:6]
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(when))
    return f"{scene_id}_{query_slug(query)}_{digest}_{stamp}"


@contextlib.contextmanager
def reserved_stem(out_dir: Path, base: str, suffixes: tuple[str, ...] = SUFFIXES) -> Iterator[str]:
    """Yields ``base`` or the first free ``base-2``, ``base-3``, ...: a stem no file in ``out_dir`` (with
    one of ``suffixes``) and no other export of this process in progress uses. Held until the block ends
    (the files exist then)."""
    with _reserved_lock:
        for number in itertools.count(1):
            stem = base if number == 1 else f"{base}-{number}"
            key = out_dir / stem
            taken = key in _reserved or any((out_dir / f"{stem}{s}").exists() for s in suffixes)
            if not taken:
                _reserved.add(key)
                break
    try:
        yield stem
    finally:
        with _reserved_lock:
            _reserved.discard(key)


def export_selection(
    out_dir: Path,
    loaded: LoadedScene,
    result: GroundingResult,
    candidate: Candidate,
    threshold: float,
) -> ExportedSelection:
    """Writes a new ``<stem>.ply`` and ``<stem>.json`` into ``out_dir`` (see the module docstring).

    Raises:
        ValueError: no Gaussian reaches ``threshold`` (nothing to export).
    """
    grounded = loaded.grounded(candidate.point_probs, threshold)
    gaussian_mask = loaded.gaussian_values(grounded)
    if not gaussian_mask.any():
        raise ValueError(f"nothing to export: no Gaussian reaches the threshold {threshold:.2f}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    box = loaded.box(grounded)
    with reserved_stem(out_dir, export_stem(result.scene_id, result.text, time.time())) as stem:
        ply_path, json_path = out_dir / f"{stem}.ply", out_dir / f"{stem}.json"
        with atomic_path(ply_path) as temporary:
            count = write_gaussians_ply(temporary, loaded.features.gaussians, mask=gaussian_mask)
            ply_bytes = temporary.read_bytes()  # this export's own file, before it takes its name
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
        json_bytes = (json.dumps(record, indent=1, allow_nan=False) + "\n").encode("utf-8")
        write_bytes_atomic(json_path, json_bytes)
    return ExportedSelection(ply_path, json_path, ply_bytes, json_bytes, count)
