"""kseg: train semantic-segmentation models with Keras and ship them as verified TFLite files.

Importing ``kseg`` itself loads nothing heavy: ``kseg.runtime`` (the deploy side) must work on a
machine without TensorFlow, so the training API lives in submodules that are imported on use:

    from kseg import models, losses, metrics, data, train, export
"""

__version__ = "0.1.0"

DEFAULT_IGNORE_INDEX = 255
