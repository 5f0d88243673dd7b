"""``liftgs eval``: score a checkpoint on a dataset split; print tables, write JSON and a PNG of plots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from liftgs.data.store import DatasetError
from liftgs.eval.evaluate import evaluate
from liftgs.eval.report import print_report, save_plot, write_json
from liftgs.model.loading import ModelLoadError, load_liftgs

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
    """Where eval_results.json and eval_plots.png are written."""
    threshold: float = 0.5
    """Mask probability above which a point belongs to the prediction."""
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
            model, info = load_liftgs(self.checkpoint, self.device)
            root = self.data if self.data is not None else _default_root()
            dataset = GroundingDataset(root, self.split, load_frames=False)
            expressions = load_expressions(self.annotations) if self.annotations is not None else None
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
        print_report(result, console)
        meta = {
            "checkpoint": info["checkpoint"],
            "data": str(root),
            "split": self.split,
            "annotations": None if self.annotations is None else str(self.annotations),
        }
        write_json(result, self.output_dir / RESULTS_NAME, meta)
        save_plot(result, self.output_dir / PLOT_NAME)
        console.print(f"wrote {self.output_dir / RESULTS_NAME} and {self.output_dir / PLOT_NAME}")


def _default_root() -> Path:
    from liftgs.data import default_dataset_root

    return default_dataset_root(generate_if_missing=True)
