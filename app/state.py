"""What one browser tab is looking at: its scene, its query, its result and its history.

Each connected client owns one ``ClientState``; nothing here is shared between tabs. Pure data and small
pure helpers, no viser and no torch, so the rules (history, negatives) are testable on their own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.engine import GroundingResult

HISTORY_LENGTH = 10
NEGATIVE_SEPARATOR = ";"
MAX_QUERY_LENGTH = 200
"""Characters a query (or one negative) may have; the text encoder reads far fewer tokens anyway."""
MAX_NEGATIVES = 8
"""Negative queries one request may subtract."""


class InputError(ValueError):
    """A GUI value the viewer does not accept; the message says why in one line."""


@dataclass
class ClientState:
    """Per-client viewer state: what the GUI asks for, and the latest result.

    Attributes:
        scene_id: the scene asked for.
        query: the query asked for (``normalize_query``-ed; "" = none).
        negatives: queries whose masks are subtracted.
        threshold: mask probability at which a Gaussian counts as grounded.
        candidate: index into ``result.candidates`` of the candidate shown (0 = the best).
        result: the latest grounding computed for this client (possibly for an older request).
        history: past queries, most recent first, without repeats.
    """

    scene_id: str
    query: str = ""
    negatives: tuple[str, ...] = ()
    threshold: float = 0.5
    candidate: int = 0
    result: GroundingResult | None = None
    history: list[str] = field(default_factory=list)

    def result_is_current(self) -> bool:
        """Whether ``result`` answers the current scene, query and negatives."""
        return self.result is not None and (
            (self.result.scene_id, self.result.text, self.result.negatives)
            == (self.scene_id, self.query, self.negatives)
        )


def normalize_query(text: str) -> str:
    """Whitespace collapsed and stripped: ``"  the  red chair "`` -> ``"the red chair"``."""
    return " ".join(text.split())


def check_query(text: str) -> str:
    """``normalize_query(text)``; "" means no query.

    Raises:
        InputError: longer than ``MAX_QUERY_LENGTH`` characters.
    """
    query = normalize_query(text)
    if len(query) > MAX_QUERY_LENGTH:
        raise InputError(f"query too long: {len(query)} characters (at most {MAX_QUERY_LENGTH})")
    return query


def parse_negatives(text: str) -> list[str]:
    """Negative queries from the negatives box: ``;``-separated, a leading "not" dropped, blanks ignored.

    ``"not the table; the lamp"`` -> ``["the table", "the lamp"]``.

    Raises:
        InputError: more than ``MAX_NEGATIVES`` of them, or one longer than ``MAX_QUERY_LENGTH``.
    """
    negatives = []
    for part in text.split(NEGATIVE_SEPARATOR):
        part = re.sub(r"^not\b\s*", "", normalize_query(part), flags=re.IGNORECASE)
        if len(part) > MAX_QUERY_LENGTH:
            raise InputError(f"negative query too long: {len(part)} characters (at most {MAX_QUERY_LENGTH})")
        if part:
            negatives.append(part)
    if len(negatives) > MAX_NEGATIVES:
        raise InputError(f"too many negative queries: {len(negatives)} (at most {MAX_NEGATIVES})")
    return negatives


def check_threshold(value: object, low: float, high: float) -> float:
    """``value`` as a float in ``[low, high]`` (the slider's range).

    Raises:
        InputError: not a finite number in that range.
    """
    try:
        threshold = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"threshold must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(threshold) or not low <= threshold <= high:
        raise InputError(f"threshold must be between {low:g} and {high:g}, got {threshold:g}")
    return threshold


def push_history(history: list[str], query: str, limit: int = HISTORY_LENGTH) -> list[str]:
    """History with ``query`` first (an earlier occurrence moves to the front), at most ``limit`` long."""
    query = normalize_query(query)
    if not query:
        return list(history)
    return [query, *(entry for entry in history if entry != query)][:limit]
