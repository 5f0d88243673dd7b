"""Running the grid's pending runs: one at a time in this process, or on ``jobs`` worker processes.

A run may start once the pretraining run it is initialised from (``RunSpec.init``) has finished; the plan's
order already respects that, so one worker simply follows it. Worker processes are spawned fresh for every
run (no torch / nerfstudio state shared between runs), and each writes its console output to its own log
file so parallel progress bars do not interleave.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from liftgs.experiments.grid import RunSpec

Task = Callable[[RunSpec], dict]
"""Trains and scores one run, returns its record (must be picklable for ``jobs > 1``)."""


def _logged(task: Task, run: RunSpec, log: Path) -> dict:
    """``task(run)`` with this process's stdout and stderr (file descriptors 1 and 2) sent to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as stream:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        return task(run)


def execute(
    pending: list[RunSpec], task: Task, jobs: int, finished: set[str], log_dir: Path
) -> Iterator[tuple[RunSpec, dict]]:
    """Yields ``(run, task(run))`` for every pending run as it finishes.

    Args:
        pending: runs to do, in the plan's order.
        task: trains and scores one run.
        jobs: 1 runs in this process in plan order; more runs up to ``jobs`` worker processes at once,
            each run's output going to ``log_dir/<run name>.log``.
        finished: names of runs already done (pending runs initialised from them may start at once).
        log_dir: folder of the workers' log files.

    Raises:
        ValueError: a run initialised from a run that is neither finished nor pending.
        Exception: the first run that failed, re-raised after the runs already started have finished
            (and been yielded).
    """
    names = {run.name for run in pending}
    orphans = [run.name for run in pending if run.init is not None and run.init not in names | finished]
    if orphans:
        raise ValueError(f"runs {orphans} start from a pretraining run that is neither done nor planned")
    if jobs == 1:
        for run in pending:
            print(f"{run.name}: started", flush=True)
            yield run, task(run)
        return
    done = set(finished)
    waiting = list(pending)
    running: dict[Future, RunSpec] = {}
    failure: BaseException | None = None
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=spawn, max_tasks_per_child=1) as pool:
        while waiting or running:
            ready = [run for run in waiting if run.init is None or run.init in done]
            while failure is None and ready and len(running) < jobs:
                run = ready.pop(0)
                waiting.remove(run)
                print(f"{run.name}: started, output in {log_dir / f'{run.name}.log'}", flush=True)
                running[pool.submit(_logged, task, run, log_dir / f"{run.name}.log")] = run
            if not running:
                break  # a failure stopped new starts and everything started has finished
            completed, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in completed:
                run = running.pop(future)
                error = future.exception()
                if error is not None:
                    print(f"{run.name}: failed ({error}); see {log_dir / f'{run.name}.log'}", flush=True)
                    failure = failure or error
                    continue
                done.add(run.name)
                yield run, future.result()
    if failure is not None:
        raise failure
