"""TFLite conversion from the exported SavedModel's batch-1 ``tflite`` signature."""

import tensorflow as tf

from kseg.export.savedmodel import TFLITE

MODES = ("float32",)


def convert(saved_model_path, mode="float32"):
    """TFLite flatbuffer bytes for ``mode``."""
    if mode not in MODES:
        raise ValueError(f"unknown TFLite mode {mode!r}; available: {', '.join(MODES)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_path), signature_keys=[TFLITE])
    return converter.convert()
