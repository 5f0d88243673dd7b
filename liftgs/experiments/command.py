"""``liftgs experiments``: train and score the experiment grid; write ``results.json``, ``results.md``, plots.

Each run is the registered ``ns-train`` method's TrainerConfig with the run's flags (``grid.ns_train_args``),
trained (in this process, or ``--jobs`` at once in worker processes: ``liftgs.experiments.schedule``),
exported, and scored with ``liftgs.eval.evaluate`` on ``--eval-split`` (val by default: never tune on test;
``--eval-split test`` for the final table). Resumable: a run whose result in
``results.json`` and checkpoint were made by the same command and evaluation is not recomputed.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from liftgs.atomic import write_json_atomic, write_text_atomic
from liftgs.data import default_dataset_root
from liftgs.experiments.grid import RunSettings, RunSpec, command_line, plan_runs
from liftgs.experiments.report import markdown, plot


@dataclass
class ExperimentsCommand:
    """Train and evaluate the LIFT-GS experiment grid (supervision, data efficiency, pseudo-label noise)."""

    data: Path | None = None
    """Dataset root with 2D instance maps (stand-in pseudo-labels); default: the embedded benchmark."""
    out: Path = Path("docs/experiments")
    """Where results.json, results.md and results.png go."""
    work_dir: Path = Path("outputs/experiments")
    """Training runs (runs/) and exported checkpoints (checkpoints/)."""
    steps_per_run: int = 300
    """Training steps of every fine-tuning / from-scratch / 3D run."""
    pretrain_steps: int = 300
    """Training steps of every pretraining run."""
    fractions: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0)
    """Labelled fractions of the training expressions (data-efficiency study)."""
    noise_levels: tuple[float, ...] = (0.0, 0.5, 1.0)
    """Pseudo-label noise levels (noise study; fine-tuned on the smallest fraction)."""
    pretrain_noise: float = 0.5
    """Noise level of the pretraining that the data-efficiency study fine-tunes from."""
    eval_split: str = "val"
    """Split scored after each run (val: never tune on test; test only for the final table)."""
    eval_max_scenes: int | None = None
    """Score only the first N scenes of the split (None: all)."""
    device: str = "auto"
    """auto (cuda when available), cpu or cuda."""
    threads: int = 1
    """torch CPU threads per run."""
    jobs: int = 1
    """Runs trained at once, each in its own process (logs in ``<work-dir>/logs``); 1: in this process."""

    def command(self, data: Path) -> str:
        """The canonical command line of this invocation (every option spelt out)."""
        args = [
            "liftgs", "experiments", "--data", str(data), "--out", str(self.out),
            "--work-dir", str(self.work_dir), "--steps-per-run", str(self.steps_per_run),
            "--pretrain-steps", str(self.pretrain_steps),
            "--fractions", *(f"{f:g}" for f in self.fractions),
            "--noise-levels", *(f"{n:g}" for n in self.noise_levels),
            "--pretrain-noise", f"{self.pretrain_noise:g}", "--eval-split", self.eval_split,
            "--eval-max-scenes", str(self.eval_max_scenes), "--device", self.device,
            "--threads", str(self.threads), "--jobs", str(self.jobs),
        ]  # fmt: skip
        return shlex.join(args)

    def main(self) -> None:
        from liftgs.data.store import DatasetError
        from liftgs.model import CheckpointError
        from liftgs.pseudo.segments import PseudoLabelError

        try:
            self.run()
        except (ValueError, DatasetError, CheckpointError, PseudoLabelError, FileNotFoundError) as error:
            raise SystemExit(f"liftgs experiments: {error}") from None

    def run(self) -> dict:
        """Trains and scores every run not done yet; returns the results document."""
        import torch

        from liftgs.experiments.runner import RunTask, evaluation_record, trained_checkpoint
        from liftgs.experiments.schedule import execute

        if min(self.steps_per_run, self.pretrain_steps, self.threads, self.jobs) < 1:
            raise ValueError("--steps-per-run, --pretrain-steps, --threads and --jobs must be >= 1")
        runs = plan_runs(self.fractions, self.noise_levels, self.pretrain_noise)
        data = (self.data or default_dataset_root(generate_if_missing=True)).resolve()
        device = ("cuda" if torch.cuda.is_available() else "cpu") if self.device == "auto" else self.device
        settings = RunSettings(
            data, self.work_dir.resolve(), self.steps_per_run, self.pretrain_steps, device, self.threads
        )
        self.out.mkdir(parents=True, exist_ok=True)
        (settings.work_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        path = self.out / "results.json"
        records: dict[str, dict] = json.loads(path.read_text())["runs"] if path.is_file() else {}
        evaluation = evaluation_record(self.eval_split, self.eval_max_scenes)
        results = {
            "command": self.command(data),
            "eval": evaluation,
            "plan": {
                "fractions": list(self.fractions),
                "noise_levels": list(self.noise_levels),
                "pretrain_noise": self.pretrain_noise,
                "noise_fraction": min(self.fractions),
            },
        }
        pending, trained_s = [], {}
        for run in runs:
            record = records.get(run.name)
            same = record is not None and record["command"] == command_line(run, settings)
            if same and trained_checkpoint(run, settings) is not None:
                if record["eval"] == evaluation:
                    print(f"{run.name}: done before, kept")
                    continue
                trained_s[run.name] = record["train_s"]
            pending.append(run)
        finished = {run.name for run in runs} - {run.name for run in pending}
        task = RunTask(settings, self.eval_split, self.eval_max_scenes, trained_s)
        log_dir = settings.work_dir / "logs"
        for index, (run, record) in enumerate(execute(pending, task, self.jobs, finished, log_dir)):
            records[run.name] = record
            metrics = record["metrics"]
            print(
                f"[{index + 1}/{len(pending)}] {run.name}: Acc@0.25 {100 * metrics.get('acc@0.25', 0):.1f}, "
                f"Acc@0.5 {100 * metrics.get('acc@0.5', 0):.1f} ({record['train_s'] / 60:.1f} min training)"
            )
            self._write(results, records, runs)
        return self._write(results, records, runs)

    def _write(self, results: dict, records: dict[str, dict], runs: list[RunSpec]) -> dict:
        """results.json (plan runs first, earlier runs outside the plan kept), results.md, results.png."""
        planned = [run.name for run in runs if run.name in records]
        ordered = {name: records[name] for name in planned}
        ordered.update({name: record for name, record in records.items() if name not in ordered})
        document = {**results, "run_s": sum(records[n]["train_s"] + records[n]["eval_s"] for n in planned)}
        document["runs"] = ordered
        write_json_atomic(self.out / "results.json", document)
        shown = {**document, "runs": {name: records[name] for name in planned}}
        write_text_atomic(self.out / "results.md", markdown(shown))
        plot(shown, self.out / "results.png")
        return document
