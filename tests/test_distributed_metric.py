"""The confusion-matrix metric aggregates across replicas (two logical CPU devices, run in a
subprocess because TensorFlow's devices are fixed at start-up)."""

import subprocess
import sys

CODE = r"""
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
import keras
from kseg import losses, metrics, models
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)
y = rng.integers(0, 3, (16, 16, 16)).astype(np.int32)
y[:, :3] = 255
with strategy.scope():
    model = models.build("unet", num_classes=3, input_shape=(16, 16, 3), depth=1, base_filters=4)
    metric = metrics.ConfusionMatrix(3)
    model.compile("adam", losses.SparseCrossEntropy(), metrics=[metric])
assert strategy.num_replicas_in_sync == 2
model.evaluate(x, y, batch_size=8, verbose=0)
cm = np.asarray(metric.matrix.numpy())
pred = np.argmax(model.predict(x, batch_size=8, verbose=0), -1)
ref = metrics.confusion_matrix(y, pred, 3, 255)
assert cm.sum() == (y != 255).sum(), (cm.sum(), (y != 255).sum())
np.testing.assert_array_equal(cm, ref)
print("ok")
"""


def test_confusion_matrix_sums_over_replicas():
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")
