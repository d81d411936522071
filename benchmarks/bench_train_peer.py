"""Training speed of kseg beside a peer implementation of the same architecture, in one run.

Peer: keras-hub's DeepLabV3 (a DeepLabv3+: ResNet-50 or MobileNetV2 encoder — keras-hub's
ResNetBackbone, or keras.applications' MobileNetV2 handed to it — at output stride 32, ASPP with plain
3x3 atrous convolutions, 48-channel low-level projection, one 1x1 256-channel head). kseg builds
the same network with ``deeplabv3plus backbone=resnet50|mobilenetv2 output_stride=32 separable=false
decoder_convs=0 dropout=0``. Both train with AdamW and per-pixel cross-entropy on the same random
batch; steps alternate between the two models so machine noise hits both alike.

keras-hub is not a kseg dependency: install it in the benchmark's own environment, e.g.

    python -m venv --system-site-packages /tmp/peer-env && /tmp/peer-env/bin/pip install keras-hub
    /tmp/peer-env/bin/python benchmarks/bench_train_peer.py --size 512 --batch-size 2 --out docs/benchmarks.md
"""

import argparse
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def kseg_model(size, classes, backbone):
    import keras

    from kseg import losses, models

    if backbone == "unet":
        model = models.build("unet", num_classes=classes, input_shape=(size, size, 3), depth=4,
                             base_filters=16, batch_norm=True, upsampling="bilinear")
    else:
        model = models.build("deeplabv3plus", num_classes=classes, input_shape=(size, size, 3),
                             backbone=backbone, output_stride=32, separable=False,
                             decoder_convs=0, dropout=0.0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=losses.get("ce"))
    return model


def mobilenetv2_encoder(size):
    """keras.applications' MobileNetV2 exposing the features kseg's decoder uses (stride 4: the
    last 24-channel block; stride 32: the 320-channel block before the 1280-channel head) the way a
    keras-hub backbone does (``pyramid_outputs``)."""
    import keras

    base = keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False,
                                          weights=None)
    encoder = keras.Model(base.input, [base.get_layer("block_2_add").output,
                                       base.get_layer("block_16_project_BN").output])
    encoder.pyramid_outputs = {"P2": encoder.outputs[0], "P5": encoder.outputs[1]}
    return encoder


def unet_peer(size, classes):
    """keras-unet-collection's unet_2d: the nearest packaged U-Net (it adds one 3x3 convolution
    before each skip concatenation, so it does a little more work than the paper's U-Net)."""
    import keras
    from keras_unet_collection import models as kuc

    model = kuc.unet_2d((size, size, 3), [16, 32, 64, 128, 256], n_labels=classes,
                        stack_num_down=2, stack_num_up=2, activation="ReLU",
                        output_activation=None, batch_norm=True, pool="max", unpool="bilinear")
    model.compile(optimizer=keras.optimizers.AdamW(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=[])
    return model, "keras-unet-collection " + __import__("importlib.metadata").metadata.version(
        "keras-unet-collection")


def peer_model(size, classes, backbone):
    import keras
    import keras_hub

    if backbone == "unet":
        return unet_peer(size, classes)
    if backbone == "mobilenetv2":
        encoder = mobilenetv2_encoder(size)
    else:
        encoder = keras_hub.models.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[7],
            stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[3, 4, 6, 3],
            stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block",
            use_pre_activation=False, image_shape=(size, size, 3))
    backbone = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder, spatial_pyramid_pooling_key="P5", upsampling_size=8,
        dilation_rates=[3, 6, 9], low_level_feature_key="P2", projection_filters=48,
        image_shape=(size, size, 3))
    model = keras_hub.models.DeepLabV3ImageSegmenter(backbone=backbone, num_classes=classes)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=[])
    return model, f"keras-hub {keras_hub.__version__}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--backbone", choices=["resnet50", "mobilenetv2", "unet"], default="resnet50",
                        help="DeepLabv3+ encoder, or unet (kseg's U-Net, depth 4, 16 base filters, "
                        "against keras-unet-collection's unet_2d).")
    parser.add_argument("--rounds", type=int, default=4, help="Alternating timed steps per model.")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    size, b = args.size, args.batch_size

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (b, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, args.classes, (b, size, size)).astype(np.int32)
    ours = kseg_model(size, args.classes, args.backbone)
    peer, version = peer_model(size, args.classes, args.backbone)
    peer_name = version.split()[0]
    feeds = {"kseg": (ours, images), peer_name: (peer, images.astype(np.float32) / 255.0)}
    for model, x in feeds.values():  # trace and warm up
        for _ in range(2):
            model.train_on_batch(x, labels)
    times = {name: [] for name in feeds}
    for _ in range(args.rounds):
        for name, (model, x) in feeds.items():
            t = time.perf_counter()
            model.train_on_batch(x, labels)
            times[name].append(time.perf_counter() - t)
    rate = {name: b / float(np.median(t)) for name, t in times.items()}
    ratio = rate["kseg"] / rate[peer_name]
    lines = [
        f"Command: `python benchmarks/bench_train_peer.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        ("U-Net (depth 4, 16 base filters, batch norm, bilinear up-sampling)" if args.backbone == "unet"
         else f"DeepLabv3+ {args.backbone} (output stride 32, plain-conv ASPP, keras-hub's head)")
        + f", {size}x{size}, batch {b}, {args.classes} classes, AdamW + cross-entropy, Keras "
        f"{__import__('keras').__version__} on TensorFlow; {version}. Median of "
        f"{args.rounds} alternating steps after 2 warm-up steps each.",
        "",
        "| implementation | parameters | s/step | images/s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, (model, _) in feeds.items():
        lines.append(f"| {name} | {model.count_params():,} | {np.median(times[name]):.2f} | "
                     f"{rate[name]:.2f} |")
    lines += ["", f"**kseg / {peer_name} training speed: {ratio:.2f}x** (target >= 1.0x)."]
    body = "\n".join(lines)
    from kseg.report.tables import publish

    what = "U-Net" if args.backbone == "unet" else f"DeepLabV3 ({args.backbone})"
    publish(body, args.out, f"Training speed: kseg vs {peer_name} {what}")
    return 0 if ratio >= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
