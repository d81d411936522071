"""Text tables: an export's verification results (printed by ``kseg export``), and measured
tables put into markdown files (``kseg benchmark --doc``, the scripts in benchmarks/)."""

import datetime
import os
import platform
import re
from pathlib import Path


def format_export(meta, out):
    m = meta["metrics"]
    lines = [
        f"exported to {Path(out)} ({meta['output']['kind']}) - verified on {m['images']} images of "
        f"{m['validation_data']}",
        f"{'model':<24} {'size':>10} {'val mIoU':>9} {'drop (pts)':>10} {'pixel acc':>10} "
        f"{'agrees w/ Keras':>16}",
        f"{'Keras (reference)':<24} {'-':>10} {m['keras']['miou']:>9.4f} {'-':>10} "
        f"{m['keras']['pixel_accuracy']:>10.4f} {'-':>16}",
    ]
    for key, value in m.items():
        if isinstance(value, dict) and "agreement" in value:
            lines.append(
                f"{'model_' + key + '.tflite':<24} {value['size_bytes'] / 1024:>7.0f} KB "
                f"{value['miou']:>9.4f} {value['miou_drop_points']:>10.2f} "
                f"{value['pixel_accuracy']:>10.4f} {value['agreement']:>16.2%}"
            )
        if isinstance(value, dict) and value.get("float_layers") and "agreement" in value:
            layers = value["float_layers"]
            shown = ", ".join(layers[:6]) + (f", ... ({len(layers)} in all)" if len(layers) > 6 else "")
            lines.append(f"  rescued: {len(layers)} layer(s) kept in float: {shown}")
    return "\n".join(lines)


def machine():
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def write_section(path, heading, body, replace=True):
    """Put ``## heading`` + ``body`` into the markdown file ``path``: replace a section of that
    heading (``replace``) or append a new one; the file is created with a title if missing."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n\nMeasured tables, newest last.\n"
    stamp = datetime.date.today().isoformat()
    section = f"## {heading}\n\n_{stamp}, {machine()}_\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if replace and pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")
    return path


def publish(body, path, heading):
    """Print a benchmark's markdown ``body`` and, when ``path`` is given, put it into that file
    under ``## heading`` (``write_section``)."""
    print(body)
    if path:
        write_section(path, heading, body)
