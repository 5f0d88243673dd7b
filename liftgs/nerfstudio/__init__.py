"""The nerfstudio plugin: ``LiftGSDataManager`` (cross-scene batches), ``LiftGSModel``, ``LiftGSPipeline``,
and ``export-checkpoint``. The method specifications live in ``method_configs/liftgs.py``."""
