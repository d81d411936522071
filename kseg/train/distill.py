"""Where a run's distillation teacher comes from (``kseg train --teacher``).

The teacher runs as a TFLite file in the input pipeline (``kseg.data.teacher``). ``--teacher``
names an exported ``.tflite`` file (any backend), or a run folder / ``.keras`` file, whose weights
are converted once (TensorFlow backend) to ``RUN/teacher.tflite`` at the student's training size;
a resumed run reuses that file.
"""

from pathlib import Path

from kseg.errors import ConfigError, NotFoundError
from kseg.files import write_bytes_atomic

TEACHER_FILE = "teacher.tflite"


def teacher_file(config, run, log=None):
    """The .tflite file that ``config.teacher`` names, converted into ``run`` when needed."""
    source = Path(config.teacher)
    if source.suffix == ".tflite":
        if not source.is_file():
            raise NotFoundError(f"--teacher {source}: no such file")
        return source
    converted = run.file(TEACHER_FILE)
    if converted.is_file():
        return converted
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ConfigError(f"--teacher {source}: converting a Keras teacher needs the TensorFlow "
                          "backend; export it first (kseg export TEACHER --tflite) and give the "
                          ".tflite file")
    from kseg.export import tflite
    from kseg.inference import load

    teacher = load(source)  # a run folder's best checkpoint, or a .keras file
    height, width = config.image_size
    if teacher.config is not None:  # its weights at the student's size
        model = teacher.rebuilt(input_shape=(height, width, 3)).model
    else:
        model = teacher.model
        height, width = teacher.input_size or (height, width)
    if log:
        log(f"converting the teacher {teacher.name} to {converted} ({height}x{width}, float32)")
    write_bytes_atomic(converted, tflite.convert(model, height, width, "float32"))
    return converted
