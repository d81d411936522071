"""SavedModel export through ``keras.export.ExportArchive`` (which tracks Keras 3 variables; a
hand-made ``tf.Module`` around a Keras 3 model loses them and converts to garbage).

Signatures:
- ``serving_default``: uint8 ``images [N, H, W, 3]`` of any batch size -> ``scores [N, H, W, C]``.
- ``tflite``: the same with the batch fixed to 1, which the TFLite converter starts from.
"""

import keras
import tensorflow as tf

SERVING = "serving_default"
TFLITE = "tflite"


def save(model, path, height, width):
    def serve(images):
        return {"scores": model(images, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, batch in ((SERVING, None), (TFLITE, 1)):
        spec = tf.TensorSpec([batch, int(height), int(width), 3], tf.uint8, name="images")
        archive.add_endpoint(name, serve, input_signature=[spec])
    archive.write_out(str(path), verbose=False)
    return path
