"""``runs/NAME/report.html``: one self-contained page (images inlined) about a run, viewable offline:
configuration, loss and mIoU curves, per-class IoU and the confusion matrix of the best checkpoint
on the validation data, and sample overlays (image | truth | prediction)."""

import logging
import base64
import html
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from kseg.files import write_text_atomic

logger = logging.getLogger(__name__)

REPORT = "report.html"


def _img_tag(path_or_array, alt):
    if isinstance(path_or_array, np.ndarray):
        buf = io.BytesIO()
        Image.fromarray(path_or_array).save(buf, format="PNG")
        data = buf.getvalue()
    else:
        data = Path(path_or_array).read_bytes()
    return (f'<img alt="{html.escape(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(data).decode()}">')


def write_report(run_path, samples=4, batch_size=8, log=logger.info):
    """Evaluate the run's best checkpoint on its validation data and write ``report.html``."""
    from kseg.report import figures
    from kseg.data.pipeline import evaluation_dataset
    from kseg.inference import evaluate, format_scores, load
    from kseg.train.rundir import RunDir

    run = RunDir(run_path)
    entries = run.metrics()
    ref = load(run.path)
    val = ref.config.open_source("val")
    result = evaluate(ref, val, batch_size=batch_size)
    size = ref.input_size or ref.config.image_size
    n = len(ref.classes)
    overlays = []
    for images, labels in evaluation_dataset(val, size, batch_size).take(1):
        pred = ref.predict_labels(np.asarray(images))
        for i in range(min(samples, len(images))):
            overlays.append(figures.triptych(np.asarray(images[i]), np.asarray(labels[i]), pred[i], n,
                                           val.ignore_index))
    with tempfile.TemporaryDirectory() as tmp:
        curves = figures.save_curves(entries, Path(tmp) / "curves.png", title=str(run.path))
        ious = figures.save_class_iou(ref.classes, result["iou"], Path(tmp) / "iou.png")
        cm = figures.save_confusion_matrix(result["confusion_matrix"], ref.classes,
                                         Path(tmp) / "cm.png", title="best checkpoint, validation")
        tags = {k: _img_tag(v, k) for k, v in (("curves", curves), ("iou", ious), ("cm", cm))}
    state = run.state()
    rows = "".join(
        f"<tr><td>{e['epoch']}</td><td>{e.get('loss', float('nan')):.4f}</td>"
        f"<td>{e.get('val_loss', float('nan')):.4f}</td><td>{e.get('val_miou', float('nan')):.4f}</td>"
        f"<td>{e.get('seconds', 0):.0f}</td><td>{'best' if e.get('best') else ''}</td></tr>"
        for e in entries)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>kseg run {html.escape(str(run.path))}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
img{{max-width:100%}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 8px;
text-align:right}} pre{{background:#f5f5f5;padding:8px;overflow-x:auto}}</style></head><body>
<h1>Run {html.escape(str(run.path))}</h1>
<p>{state['epoch']} epochs finished; best val mIoU {result['miou']:.4f} ({html.escape(Path(ref.name).name)}),
pixel accuracy {result['pixel_accuracy']:.4f}, on {result['images']} images of {html.escape(result['data'])}.</p>
<h2>Curves</h2>{tags['curves']}
<h2>Per-class IoU (best checkpoint)</h2>{tags['iou']}
<pre>{html.escape(format_scores(result))}</pre>
<h2>Confusion matrix</h2>{tags['cm']}
<h2>Samples: image | truth | prediction</h2>
{''.join(_img_tag(o, f'sample {i}') + '<br>' for i, o in enumerate(overlays))}
<h2>Epochs</h2><table><tr><th>epoch</th><th>loss</th><th>val loss</th><th>val mIoU</th><th>s</th><th></th></tr>{rows}</table>
<h2>Configuration</h2><pre>{html.escape(json.dumps(run.config(), indent=2))}</pre>
</body></html>
"""
    out = run.file(REPORT)
    write_text_atomic(out, page)
    log(f"wrote {out}")
    return out
