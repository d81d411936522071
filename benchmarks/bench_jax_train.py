"""Where Keras-on-JAX training time goes: the model's train step alone (synthetic batches on the
device) vs kseg's numpy loader (TrainBatches) feeding it, in one run.

    KERAS_BACKEND=jax python benchmarks/bench_jax_train.py --data camvid:PATH [--size 512 512]
        [--batch 16] [--steps 30] [--policies mixed_bfloat16,float32] [--loader-only]

Prints images/s for: the loader in 1 thread; the loader in N threads with OpenCV's own thread pool
left at its default and with it set to 1 thread; and `model.train_on_batch` of
DeepLabv3+ MobileNetV2 (keras-hub/smp-sized: width 1.0, ASPP 256, decoder 256) on one repeated
batch, so the input path is not counted. Written for the JAX-only GPU machines (no TensorFlow).
"""

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("KERAS_BACKEND", "jax")


def loader_rate(batches, threads, n_batches):
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(batches.__getitem__, range(threads)))  # per-thread pipelines built
        t = time.perf_counter()
        list(pool.map(batches.__getitem__, range(n_batches)))
    return n_batches * batches.batch / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--size", type=int, nargs=2, default=(512, 512), help="model input")
    p.add_argument("--loader-size", type=int, nargs=2, default=(360, 480))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--policies", default="mixed_bfloat16,float32")
    p.add_argument("--loader-only", action="store_true")
    p.add_argument("--contention", type=int, metavar="N", help="only time a small model's train "
                   "step alone, beside N loader threads, and beside N threads fed by N processes")
    args = p.parse_args()

    import cv2
    import keras
    import numpy as np

    from kseg import models
    from kseg.data import open_source
    from kseg.data.augment import Augmentation
    from kseg.data.numpy_pipeline import TrainBatches
    from kseg.losses import SparseCrossEntropy

    print(f"backend {keras.backend.backend()}, devices "
          f"{[str(d) for d in __import__('jax').devices()]}, {os.cpu_count()} CPUs", flush=True)
    src = open_source(args.data, "train", image_size=tuple(args.loader_size))
    classes = list(src.classes)
    objects = tuple(classes.index(c) for c in ("Pole", "SignSymbol", "Car", "Pedestrian", "Bicyclist",
                                                "Fence") if c in classes)
    aug = Augmentation("strong", copy_paste=0.3, object_classes=objects or None)
    batches = TrainBatches(src, args.loader_size, args.batch, augment=aug, cache=True, processes=0)
    n = len(batches)
    t = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count()) as pool:  # decode + fill the cache
        list(pool.map(batches.examples, range(len(src))))
    if args.contention:
        return contention(batches, args.contention, src, args.loader_size, aug)
    print(f"decode {len(src)} examples: {time.perf_counter() - t:.1f} s", flush=True)
    default_cv2 = cv2.getNumThreads()
    print(f"loader 1 thread: {loader_rate(batches, 1, min(n, 4)):.1f} img/s", flush=True)
    for threads in sorted({4, os.cpu_count() or 2}):
        cv2.setNumThreads(default_cv2)
        a = loader_rate(batches, threads, min(n, 2 * threads))
        cv2.setNumThreads(1)
        b = loader_rate(batches, threads, min(n, 2 * threads))
        print(f"loader at {args.loader_size[0]}x{args.loader_size[1]}, {threads} threads: {a:.1f} img/s (OpenCV {default_cv2} threads), "
              f"{b:.1f} img/s (OpenCV 1 thread)", flush=True)
    if args.loader_only:
        return
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch, *args.size, 3), dtype=np.uint8)
    y = rng.integers(0, len(classes), (args.batch, *args.size), dtype=np.int32)
    for policy in args.policies.split(","):
        keras.mixed_precision.set_global_policy(policy)
        model = models.build("deeplabv3plus", num_classes=len(classes), input_shape=(*args.size, 3),
                             backbone="mobilenetv2", aspp_channels=256, decoder_channels=256)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=SparseCrossEntropy(ignore_index=255))
        t = time.perf_counter()
        model.train_on_batch(x, y)
        print(f"model {model.count_params():,} parameters, first step (trace + compile) "
              f"{time.perf_counter() - t:.1f} s", flush=True)
        for _ in range(3):
            model.train_on_batch(x, y)
        t = time.perf_counter()
        for _ in range(args.steps):
            loss = model.train_on_batch(x, y)
        np.asarray(loss)
        dt = (time.perf_counter() - t) / args.steps
        print(f"train step alone: {dt * 1000:.1f} ms = {args.batch / dt:.1f} img/s at "
              f"{args.size[0]}x{args.size[1]}, batch {args.batch}, {policy}", flush=True)

def contention(batches, n, src, size, aug):
    """A small JAX train step timed alone and while N threads pull loader batches."""
    import threading

    import keras
    import numpy as np

    from kseg.data.numpy_pipeline import TrainBatches

    inputs = keras.Input((16, 16, 3))
    x = inputs
    for _ in range(30):
        x = keras.layers.Conv2D(8, 3, padding="same")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(x))
    model.compile("adam", "sparse_categorical_crossentropy")
    xb = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    yb = np.zeros((4, 16, 16), np.int32)

    def step_ms(steps=30):
        for _ in range(5):
            model.train_on_batch(xb, yb)
        t = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(xb, yb)
        return (time.perf_counter() - t) / steps * 1000

    print(f"small train step alone: {step_ms():.1f} ms", flush=True)
    for processes in (0, n):
        loader = TrainBatches(src, size, 4, augment=aug, workers=n, processes=processes, cache=True)
        stop = threading.Event()

        def pull(k):
            while not stop.is_set():
                loader[k % len(loader)]
                k += n

        threads = [threading.Thread(target=pull, args=(k,)) for k in range(n)]
        for th in threads:
            th.start()
        time.sleep(10)  # caches filled, pipelines built
        ms = step_ms()
        stop.set()
        for th in threads:
            th.join()
        loader.close()
        print(f"small train step beside {n} loader threads"
              f"{f' fed by {processes} processes' if processes else ''}: {ms:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
