"""``liftgs.experiments.schedule``: runs on worker processes start only after the pretraining they start
from, run side by side, write their output to their own log, and a failed run stops new starts but is
raised only after the runs already started have finished. A fake task stands in for training."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from liftgs.experiments.grid import RunSpec
from liftgs.experiments.schedule import execute

PRETRAIN = RunSpec("pretrain", "liftgs-pretrain", noise=0.5)
FINETUNE = RunSpec("finetune", "liftgs", 0.5, 0.5, init="pretrain")
SCRATCH = RunSpec("scratch", "liftgs")


@dataclass(frozen=True)
class FakeTask:
    """Sleeps, prints, and returns its start and end times; fails for the run named ``fail``."""

    seconds: float
    fail: str = ""

    def __call__(self, run: RunSpec) -> dict:
        start = time.time()
        print(f"training {run.name}", flush=True)
        time.sleep(self.seconds)
        if run.name == self.fail:
            raise RuntimeError(f"{run.name} diverged")
        return {"start": start, "end": time.time()}


@pytest.mark.multiprocess
def test_workers_respect_pretraining_and_run_side_by_side(tmp_path):
    finished = dict(execute([PRETRAIN, FINETUNE, SCRATCH], FakeTask(1.0), 2, set(), tmp_path))
    assert set(finished) == {PRETRAIN, FINETUNE, SCRATCH}
    assert finished[FINETUNE]["start"] >= finished[PRETRAIN]["end"]
    assert finished[SCRATCH]["start"] < finished[PRETRAIN]["end"]  # two workers: side by side
    for run in finished:
        assert (tmp_path / f"{run.name}.log").read_text().strip() == f"training {run.name}"


def test_one_worker_runs_in_this_process_in_plan_order(tmp_path, capsys):
    finished = list(execute([PRETRAIN, FINETUNE], FakeTask(0.0), 1, set(), tmp_path))
    assert [run for run, _ in finished] == [PRETRAIN, FINETUNE]
    assert capsys.readouterr().out.count("training") == 2 and not list(tmp_path.iterdir())


@pytest.mark.multiprocess
def test_a_failed_pretraining_is_raised_and_its_fine_tuning_never_starts(tmp_path):
    finished, task = [], FakeTask(0.5, fail="pretrain")
    with pytest.raises(RuntimeError, match="pretrain diverged"):
        for run, _ in execute([PRETRAIN, FINETUNE, SCRATCH], task, 2, set(), tmp_path):
            finished.append(run)
    assert finished == [SCRATCH] and not (tmp_path / "finetune.log").exists()


def test_a_run_whose_pretraining_is_neither_done_nor_planned_is_refused(tmp_path):
    with pytest.raises(ValueError, match="neither done nor planned"):
        list(execute([FINETUNE], FakeTask(0.0), 2, set(), tmp_path))
    assert [run for run, _ in execute([FINETUNE], FakeTask(0.0), 1, {"pretrain"}, tmp_path)] == [FINETUNE]
