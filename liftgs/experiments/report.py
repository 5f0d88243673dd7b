"""The experiment report: ``results.md`` (the three studies' tables and every run's exact command and wall
time) and ``results.png`` (accuracy vs labelled fraction, vs pseudo-label noise, and per supervision).

Both read the ``results.json`` document that ``liftgs.experiments.command`` keeps::

    {"command": "liftgs experiments ...", "eval": {"split", "max_scenes"}, "run_s": training + scoring
     seconds summed over the plan's runs (with ``--jobs`` > 1 more than the wall time),
     "plan": {"fractions", "noise_levels", "pretrain_noise", "noise_fraction"},
     "runs": {name: {"method", "fraction", "noise", "init", "command", "train_s", "eval_s",
                     "metrics": {"acc@0.25", "acc@0.5", "acc@0.25/unique", ..., "mean_mask_iou", "count"},
                     "skipped": {reason: count}}}}
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from liftgs.experiments.grid import THREE_D, finetune_name, pretrain_name, scratch_name  # noqa: E402

METRICS = ("acc@0.25", "acc@0.5")


def _percent(run: dict | None, key: str) -> str:
    value = None if run is None else run["metrics"].get(key)
    return "-" if value is None else f"{100.0 * value:.1f}"


def _paired_row(label: str, runs: dict[str, dict], first: str, second: str) -> list[str]:
    """``label`` and the ``METRICS`` of run ``first``, then those of run ``second`` ("-" when missing)."""
    return [label, *(_percent(runs.get(name), m) for name in (first, second) for m in METRICS)]


def _with_full(fractions: list[float]) -> list[float]:
    """The fractions and 1.0 (scratch at 100%: what the data-efficiency claim compares with)."""
    return sorted({*fractions, 1.0})


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(row) for row in rows)]


def markdown(results: dict) -> str:
    """The report as markdown (accuracies in %)."""
    runs, plan, evaluation = results["runs"], results["plan"], results["eval"]
    scenes = "all" if evaluation["max_scenes"] is None else f"the first {evaluation['max_scenes']}"
    lines = [
        "# LIFT-GS experiments",
        "",
        f"Command (training and scoring summed over the runs: {results['run_s'] / 60:.1f} min):",
        "",
        f"    {results['command']}",
        "",
        f"Scored on the `{evaluation['split']}` split ({scenes} scenes). Accuracies in %.",
        "",
        "## (a) Render-supervised (2D only) vs 3D-supervised, same network and steps",
        "",
    ]
    supervision = [("render-supervised (liftgs)", scratch_name(1.0)), ("3D-supervised (liftgs-3d)", THREE_D)]
    rows = [
        [label, *(_percent(runs.get(name), m) for m in (*METRICS, "mean_mask_iou"))]
        for label, name in supervision
    ]
    lines += _table(["supervision", "Acc@0.25", "Acc@0.5", "mask IoU"], rows)
    noise0 = plan["pretrain_noise"]
    lines += ["", f"## (b) Data efficiency: from scratch vs pretrained (pseudo-label noise {noise0:g})", ""]
    rows = [
        _paired_row(f"{100 * fraction:g}%", runs, scratch_name(fraction), finetune_name(fraction, noise0))
        for fraction in _with_full(plan["fractions"])
    ]
    header = ["labelled", "scratch Acc@0.25", "scratch Acc@0.5", "pretrained Acc@0.25", "pretrained Acc@0.5"]
    lines += _table(header, rows)
    fraction = plan["noise_fraction"]
    lines += ["", f"## (c) Pseudo-label noise (pretrain, then fine-tune on {100 * fraction:g}%)", ""]
    rows = [
        _paired_row(f"{noise:g}", runs, pretrain_name(noise), finetune_name(fraction, noise))
        for noise in sorted(plan["noise_levels"])
    ]
    header = ["noise", "pretrained only Acc@0.25", "Acc@0.5", "fine-tuned Acc@0.25", "Acc@0.5"]
    lines += _table(header, rows)
    lines += ["", "## Runs", ""]
    rows = [
        [name, f"{run['train_s'] / 60:.1f}", f"{run['eval_s'] / 60:.1f}", f"`{run['command']}`"]
        for name, run in runs.items()
    ]
    lines += _table(["run", "train min", "eval min", "command"], rows)
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    """``path`` (PNG): accuracy vs labelled fraction (scratch / pretrained), vs noise, per supervision."""
    runs, plan = results["runs"], results["plan"]

    def value(name: str, metric: str) -> float:
        run = runs.get(name)
        return float("nan") if run is None else 100.0 * run["metrics"].get(metric, float("nan"))

    figure, (efficiency, noise_axis, supervision) = plt.subplots(1, 3, figsize=(15, 4))
    fractions = _with_full(plan["fractions"])
    percents = [100 * f for f in fractions]
    for metric, style in zip(METRICS, ("-", "--"), strict=True):
        scratch = [value(scratch_name(f), metric) for f in fractions]
        efficiency.plot(percents, scratch, "o" + style, color="C0", label=f"scratch {metric}")
        pretrained = [value(finetune_name(f, plan["pretrain_noise"]), metric) for f in fractions]
        efficiency.plot(percents, pretrained, "s" + style, color="C1", label=f"pretrained {metric}")
    efficiency.set(xlabel="labelled expressions (%)", ylabel="accuracy (%)", title="data efficiency")
    efficiency.legend()
    levels = sorted(plan["noise_levels"])
    for metric, style in zip(METRICS, ("-", "--"), strict=True):
        finetuned = [value(finetune_name(plan["noise_fraction"], n), metric) for n in levels]
        noise_axis.plot(levels, finetuned, "o" + style, color="C2", label=f"fine-tuned {metric}")
    noise_axis.set(xlabel="pseudo-label noise level", ylabel="accuracy (%)",
                   title=f"noise (fine-tuned on {100 * plan['noise_fraction']:g}%)")  # fmt: skip
    noise_axis.legend()
    names = [("2D (liftgs)", scratch_name(1.0)), ("3D (liftgs-3d)", THREE_D)]
    for offset, metric in enumerate(METRICS):
        positions = [i + 0.4 * offset for i in range(len(names))]
        supervision.bar(positions, [value(name, metric) for _, name in names], width=0.4, label=metric)
    supervision.set_xticks([i + 0.2 for i in range(len(names))], [label for label, _ in names])
    supervision.set(ylabel="accuracy (%)", title="supervision (100% labelled)")
    supervision.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
