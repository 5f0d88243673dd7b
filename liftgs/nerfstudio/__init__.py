"""The nerfstudio plugin: ``LiftGSDataManager`` (cross-scene batches), ``LiftGSModel``, ``LiftGSPipeline``,
``LiftGSTrainer`` (atomic checkpoints, resumes from the newest readable one), reading run folders
(``run_files``) and ``export-checkpoint``. The method specifications live in ``method_configs/liftgs.py``."""
