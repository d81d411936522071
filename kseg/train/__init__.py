"""Training: ``TrainConfig`` + ``train(config, out)``; the run folder format is in ``rundir``."""

from kseg.train.config import TrainConfig
from kseg.train.rundir import RunConflictError, RunDir
from kseg.train.trainer import build_model, open_checked_sources, train

__all__ = ["TrainConfig", "RunDir", "RunConflictError", "train", "build_model", "open_checked_sources"]
