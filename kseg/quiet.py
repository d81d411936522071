"""Keeping TensorFlow's start-up and converter chatter off the terminal of ``kseg`` commands.

TensorFlow's C++ core logs through absl before any Python setting can reach it ("failed call to
cuInit" on machines without a GPU, oneDNN and CUDA notices, the converter's MLIR warnings), so
the CLI points the process's stderr at /dev/null around TensorFlow's import and device set-up and
around each TFLite conversion. ``kseg --verbose`` leaves everything as it is. Library users are
never silenced: only the CLI turns this on (``KSEG_QUIET=1``).
"""

import contextlib
import logging
import os
import sys
import warnings


def enabled():
    return os.environ.get("KSEG_QUIET") == "1"


@contextlib.contextmanager
def quiet_stderr():
    """Send file descriptor 2 to /dev/null inside the block when quiet mode is on."""
    if not enabled():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def quiet_tensorflow():
    """Turn quiet mode on and import TensorFlow (and look for devices) silently."""
    os.environ["KSEG_QUIET"] = "1"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"tensorflow(\.|$)")
    warnings.filterwarnings("ignore", module=r"keras(\.|$)")
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    with quiet_stderr():
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
        except ImportError:
            return
    try:  # absl's Python logger sets its own level when TensorFlow first logs through it
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass
