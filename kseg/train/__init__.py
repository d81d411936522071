"""Training: ``TrainConfig`` + ``train(config, out)``; the run folder format is in ``rundir``.

``TrainConfig`` imports nothing heavy (the CLI reads its defaults at start-up); the trainer, which
needs Keras, is loaded on first use of ``train``, ``build_model`` or ``open_checked_sources``."""

from kseg.train.config import TrainConfig
from kseg.train.rundir import RunConflictError, RunDir

_LAZY = ("build_model", "open_checked_sources", "train")


def __getattr__(name):
    if name in _LAZY:
        from kseg.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'kseg.train' has no attribute {name!r}")


__all__ = ["TrainConfig", "RunDir", "RunConflictError", "train", "build_model", "open_checked_sources"]
