"""Presenting an ``EvalResult``: a rich table on the terminal, a JSON file and a PNG of plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from liftgs.atomic import atomic_path, write_json_atomic
from liftgs.eval.evaluate import EvalResult
from liftgs.eval.metrics import ANCHOR_FOUND_DISTANCE, THRESHOLDS


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}"


def summary_table(result: EvalResult, title: str = "LIFT-GS grounding") -> Table:
    """Acc@0.25 / Acc@0.5 for overall, unique and multiple, then IoUs and counts."""
    summary = result.summary
    table = Table(title=title)
    table.add_column("metric")
    for split in ("overall", "unique", "multiple"):
        table.add_column(split, justify="right")
    for threshold in THRESHOLDS:
        accuracy = summary[f"acc@{threshold:g}"]
        table.add_row(
            f"Acc@{threshold:g} (%)", *(_percent(accuracy[s]) for s in ("overall", "unique", "multiple"))
        )
    table.add_row(
        "count", str(summary["count"]), str(summary["count_unique"]), str(summary["count_multiple"])
    )
    table.add_row("mean box IoU", _percent(summary["mean_box_iou"]), "", "")
    table.add_row("mean mask IoU", _percent(summary.get("mean_mask_iou")), "", "")
    return table


def group_table(result: EvalResult, group: str = "category") -> Table:
    """Count and accuracies per category (``group="category"``), per relation (``"relation"``) or per
    wording group (``"wording"``), in the summary's order."""
    table = Table(title=f"per {group}")
    table.add_column(group)
    table.add_column("count", justify="right")
    for threshold in THRESHOLDS:
        table.add_column(f"Acc@{threshold:g} (%)", justify="right")
    for name, row in result.summary.get(f"per_{group}", {}).items():
        table.add_row(name, str(row["count"]), *(_percent(row[f"acc@{t:g}"]) for t in THRESHOLDS))
    return table


def print_report(result: EvalResult, console: Console | None = None) -> None:
    """Print the summary, the per-category table, the per-relation and per-wording ones (when known), how
    many targets had no point in the cloud (scored as misses) and any skips."""
    console = console or Console()
    console.print(summary_table(result))
    console.print(group_table(result, "category"))
    if "per_relation" in result.summary:
        console.print(group_table(result, "relation"))
    if "per_wording" in result.summary:
        console.print(group_table(result, "wording"))
    ranking = result.summary.get("instance_ranking")
    if ranking is not None:
        console.print(
            f"target ranked first among the objects of its category: {_percent(ranking['target_first'])}% "
            f"of {ranking['count']} expressions (a random ranking: {_percent(ranking['chance'])}%)"
        )
    anchors = result.summary.get("anchor_localisation")
    if anchors is not None:
        console.print(
            f"named anchors located within {ANCHOR_FOUND_DISTANCE:g} m: {_percent(anchors['found'])}% of "
            f"{anchors['count']} expressions (median {anchors['median_m']:.2f} m)"
        )
    below = result.summary.get("below_threshold")
    if below is not None and below["count"]:
        console.print(
            f"no voxel reached the threshold for {below['count']} expression(s), grounded at the fallback "
            f"(Acc@0.25 {_percent(below['acc@0.25'])}% of them)"
        )
    absent = sum(record.target_points == 0 for record in result.records)
    if absent:
        console.print(
            f"[yellow]{absent} expression(s) name a target with no point in the cloud: "
            "scored as misses[/yellow]"
        )
    for reason, count in result.skipped.items():
        console.print(f"[yellow]skipped {count} expression(s): {reason}[/yellow]")


def write_json(result: EvalResult, path: Path, meta: dict | None = None) -> None:
    """Write ``meta`` (checkpoint, data, ...), the summary, skip counts and per-expression records, as strict
    JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {**(meta or {}), **result.to_json()}, indent=2)


def save_plot(result: EvalResult, path: Path) -> None:
    """PNG with per-category Acc@0.25/Acc@0.5 bars (left) and histograms of box and mask IoU (right), written
    atomically."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    per_category = result.summary.get("per_category", {})
    names = list(per_category)
    figure = Figure(figsize=(12, 4.5))
    bars_axis, hist_axis = figure.subplots(1, 2)
    positions = np.arange(len(names))
    width = 0.8 / len(THRESHOLDS)
    for offset, threshold in enumerate(THRESHOLDS):
        values = [per_category[name][f"acc@{threshold:g}"] or 0.0 for name in names]
        bars_axis.bar(
            positions + (offset - (len(THRESHOLDS) - 1) / 2) * width,
            values,
            width,
            label=f"Acc@{threshold:g}",
        )
    labels = [f"{name} ({per_category[name]['count']})" for name in names]
    bars_axis.set_xticks(positions, labels, rotation=45, ha="right")
    bars_axis.set_ylim(0.0, 1.0)
    bars_axis.set_ylabel("accuracy")
    bars_axis.set_title("per-category accuracy (expressions)")
    bars_axis.legend()
    bins = np.linspace(0.0, 1.0, 21)
    hist_axis.hist([r.box_iou for r in result.records], bins=bins, alpha=0.6, label="box IoU")
    hist_axis.hist([r.mask_iou for r in result.records], bins=bins, alpha=0.6, label="mask IoU")
    for threshold in THRESHOLDS:
        hist_axis.axvline(threshold, color="black", linestyle="--", linewidth=0.8)
    hist_axis.set_xlabel("IoU with the target")
    hist_axis.set_ylabel("expressions")
    hist_axis.set_title(f"IoU histogram (n={len(result.records)})")
    hist_axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
