"""``liftgs eval``: score a checkpoint on a dataset split; print tables, write JSON and a PNG of plots.

Flags are checked before the model is loaded (threshold, batch size, the output folder); a checkpoint
that reads lifted point features is refused up front, naming ``liftgs lift-features``, when scenes it
would score have none. Scenes that cannot be read or encoded are skipped and counted; a
run that scores no expression at all writes nothing and exits non-zero saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from liftgs.data.point_features import lifted_path
from liftgs.data.store import DatasetError
from liftgs.eval.evaluate import EvalResult, evaluate
from liftgs.eval.report import print_report, save_plot, write_json
from liftgs.model.loading import ModelLoadError, load_liftgs
from liftgs.validate import check_output_dir, check_probability

RESULTS_NAME = "eval_results.json"
PLOT_NAME = "eval_plots.png"


@dataclass
class EvalCommand:
    """Evaluate a LIFT-GS checkpoint: Acc@0.25/Acc@0.5 (overall/unique/multiple), mask IoU, per category."""

    checkpoint: Path | None = None
    """A .pt checkpoint or a nerfstudio config.yml (default: assets/liftgs_synthetic.pt)."""
    data: Path | None = None
    """Dataset root (default: the embedded synthetic benchmark, generated on first use)."""
    split: str = "test"
    """Split whose scenes and annotations are evaluated."""
    annotations: Path | None = None
    """ScanRefer-style JSON to evaluate instead of the split's own annotations."""
    max_scenes: int | None = None
    """Evaluate only the first N scenes."""
    output_dir: Path = Path("outputs/eval")
    """Where eval_results.json and eval_plots.png are written (created if missing; checked first)."""
    threshold: float = 0.5
    """Mask probability above which a point belongs to the prediction (strictly between 0 and 1)."""
    batch_size: int = 32
    """Expressions grounded per forward pass."""
    device: str = "auto"
    """auto (CUDA if available), cpu, cuda, ..."""

    def main(self) -> None:
        from liftgs.data.dataset import GroundingDataset
        from liftgs.data.store import load_expressions

        try:
            if self.max_scenes is not None and self.max_scenes < 1:
                raise ValueError(f"--max-scenes must be >= 1, got {self.max_scenes}")
            if self.batch_size < 1:
                raise ValueError(f"--batch-size must be >= 1, got {self.batch_size}")
            check_probability(self.threshold, "--threshold")
            output_dir = check_output_dir(self.output_dir, "--output-dir")
            root = self.data.expanduser() if self.data is not None else _default_root()
            dataset = GroundingDataset(root, self.split, load_frames=False)
            expressions = load_expressions(self.annotations) if self.annotations is not None else None
            model, info = load_liftgs(self.checkpoint, self.device)
            if model.reads_point_features:
                _check_lifted_features(dataset, expressions)
            result = evaluate(
                model,
                dataset,
                expressions,
                threshold=self.threshold,
                batch_size=self.batch_size,
                max_scenes=self.max_scenes,
                progress=True,
            )
        except (ValueError, ModelLoadError, DatasetError) as error:
            raise SystemExit(f"liftgs eval: {error}") from None
        console = Console()
        if not result.records:
            raise SystemExit(f"liftgs eval: no expression was scored: {nothing_scored_reason(result)}")
        print_report(result, console)
        meta = {
            "checkpoint": info["checkpoint"],
            "data": str(root),
            "split": self.split,
            "annotations": None if self.annotations is None else str(self.annotations),
        }
        try:
            write_json(result, output_dir / RESULTS_NAME, meta)
        except ValueError as error:  # strict JSON: a NaN score is a broken model, not a result
            raise SystemExit(f"liftgs eval: results not written: {error}") from None
        save_plot(result, output_dir / PLOT_NAME)
        console.print(f"wrote {output_dir / RESULTS_NAME} and {output_dir / PLOT_NAME}")


def nothing_scored_reason(result: EvalResult) -> str:
    """Why ``result`` has no record: an empty expression list, or the counted skips."""
    if not result.skipped:
        return "there are no expressions to evaluate"
    return "; ".join(f"{count} skipped ({reason})" for reason, count in result.skipped.items())


def _check_lifted_features(dataset, expressions) -> None:
    """Refuses (``ValueError``) when scenes with expressions to score have no lifted point features."""
    scene_ids = dict.fromkeys(
        e.scene_id for e in (dataset.expressions if expressions is None else expressions)
    )
    in_split = set(dataset.scene_ids)
    known = [s for s in scene_ids if s in in_split]
    missing = [s for s in known if not lifted_path(dataset.root / "scans" / s).is_file()]
    if missing:
        raise ValueError(
            f"this checkpoint reads lifted point features and {len(missing)} of the {len(known)} scenes to "
            f"score have none (e.g. {missing[0]}); run `liftgs lift-features --data {dataset.root} --split "
            f"{dataset.split}` first (a score that reads features lifted on an evaluation split must say so)"
        )


def _default_root() -> Path:
    from liftgs.data import default_dataset_root

    return default_dataset_root(generate_if_missing=True)
