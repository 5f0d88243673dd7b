"""``liftgs experiments``: the experiment grid (2D vs 3D supervision, data efficiency with and without
pretraining, pseudo-label noise) trained with the registered ns-train methods and scored with liftgs.eval.

- ``grid``: ``RunSpec``, ``plan_runs`` and each run's exact ``ns-train`` command line.
- ``runner``: pseudo-labels, in-process training, checkpoint export, evaluation of one run (``RunTask``).
- ``schedule``: the pending runs, one at a time or on worker processes, pretraining before fine-tuning.
- ``report``: ``results.md`` and ``results.png`` from ``results.json``.
- ``command``: ``ExperimentsCommand`` (resumable).
"""
