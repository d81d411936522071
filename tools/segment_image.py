"""A minimal app on kseg's deploy runtime: segment images with an exported model, no TensorFlow.

    python tools/segment_image.py exported/camvid/model_int8.tflite street.jpg --out street_seg.png

Needs only ai-edge-litert, numpy and pillow (what a device-side Python app ships). Writes, per
image, a side-by-side PNG (photo | colour overlay) and prints the share of each class and the time.
MODEL is a .tflite file of an exported folder, or the folder itself (float32 preferred).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from kseg.runtime import Segmenter


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model_<mode>.tflite in an exported folder, or the folder")
    parser.add_argument("images", nargs="+")
    parser.add_argument("--out", help="Output PNG (one image) or folder (several); default: "
                        "<image stem>_seg.png beside the image.")
    parser.add_argument("--alpha", type=float, default=0.5, help="Overlay opacity.")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    try:
        seg = Segmenter(args.model, num_threads=args.threads)
    except Exception as exc:  # ContractError and friends: say which file and why
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in args.images:
        path = Path(name)
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except OSError as exc:
            print(f"error: {path}: cannot read image ({exc})", file=sys.stderr)
            return 1
        t = time.perf_counter()
        labels = seg.segment(image)
        ms = (time.perf_counter() - t) * 1000
        overlay = seg.overlay(image, labels, alpha=args.alpha)
        canvas = Image.new("RGB", (image.width * 2, image.height))
        canvas.paste(image, (0, 0))
        canvas.paste(overlay, (image.width, 0))
        if args.out and len(args.images) == 1 and not Path(args.out).is_dir():
            target = Path(args.out)
        else:
            folder = Path(args.out) if args.out else path.parent
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{path.stem}_seg.png"
        canvas.save(target)
        counts = np.bincount(labels.ravel(), minlength=len(seg.classes))
        shares = ", ".join(f"{c} {n / labels.size:.1%}" for c, n in zip(seg.classes, counts) if n)
        print(f"{path}: {image.width}x{image.height} in {ms:.0f} ms -> {target}  ({shares})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
