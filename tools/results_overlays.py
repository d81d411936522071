"""Sample overlays of an exported model on validation images, through the deploy runtime (no
TensorFlow): one PNG per image, panels = photo with the predicted classes overlaid | ground
truth | prediction (ignored truth pixels black).

    python tools/results_overlays.py exported/camvid/model_int8.tflite camvid:../shared/data/camvid \
        --count 3 --out docs/results/camvid
    python tools/results_overlays.py exported/isbi2012/model_int8.tflite ../shared/data/isbi2012/train \
        --classes membrane,cell --remap 255:1 --val-split last --count 3 --out docs/results/isbi2012

Writes OUT_<image stem>.png (half size, to keep the repository small) and prints each image's
pixel accuracy.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from kseg.data import open_source
from kseg.data.pairs import parse_remap
from kseg.report.figures import triptych
from kseg.runtime import Segmenter, overlay_image


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a .tflite file of an exported folder")
    p.add_argument("data", help="dataset spec, as for kseg train --data")
    p.add_argument("--split", default="val")
    p.add_argument("--classes", help="comma-separated class names (folder data)")
    p.add_argument("--remap", help="FROM:TO[,...] label rewrites (folder data)")
    p.add_argument("--val-split", default="random", choices=["random", "first", "last"],
                   help="how a single folder's val pairs were carved (as for kseg train)")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--out", required=True, help="path prefix of the PNG files")
    args = p.parse_args(argv)

    seg = Segmenter(args.model)
    size = (seg.metadata["input"]["height"], seg.metadata["input"]["width"])
    source = open_source(args.data, args.split, image_size=size,
                         classes=args.classes.split(",") if args.classes else None,
                         remap=parse_remap(args.remap) if args.remap else None,
                         val_split=args.val_split)
    num_classes, ignore = len(seg.classes), seg.metadata.get("ignore_index", 255)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for index in range(min(args.count, len(source))):
        image, truth = source.load_numpy(index)
        pred = seg.segment(image)
        valid = truth != ignore
        acc = float((pred[valid] == truth[valid]).mean()) if valid.any() else float("nan")
        panel = triptych(np.asarray(overlay_image(Image.fromarray(image), pred, num_classes)),
                         truth, pred, num_classes, ignore)
        im = Image.fromarray(panel)
        im = im.resize((im.width // 2, im.height // 2), Image.BILINEAR)
        stem = Path(source.pairs[index][0]).stem
        path = out.with_name(f"{out.name}_{stem}.png")
        im.save(path, optimize=True)
        print(f"{path}: pixel accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
