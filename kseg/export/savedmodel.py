"""SavedModel export through ``keras.export.ExportArchive`` (which tracks Keras 3 variables; a
hand-made ``tf.Module`` around a Keras 3 model loses them and converts to garbage).

Signature ``serving_default``: uint8 ``images [N, H, W, 3]`` of any batch size ->
``scores [N, H, W, C]``.
"""

import keras
import tensorflow as tf

SERVING = "serving_default"


def save(model, path, height, width):
    def serve(images):
        return {"scores": model(images, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec([None, int(height), int(width), 3], tf.uint8, name="images")
    archive.add_endpoint(SERVING, serve, input_signature=[spec])
    archive.write_out(str(path), verbose=False)
    return path
