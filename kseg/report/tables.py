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
        f"{m['validation_data']}"
        + ("" if m.get("validation_held_out", True) else " (trained on: not held out)"),
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
    output = meta["output"]
    if output.get("resolution") == "model":
        lines.append(f"outputs at {output['height']}x{output['width']} (stride {output['stride']}); "
                     "scored as a client shows them (scores upsampled bilinearly, then argmax)")
    if meta.get("npu"):
        from kseg.export.npu import format_record

        for mode, record in meta["npu"].items():
            lines.append(format_record(f"model_{mode}.tflite", record))
    return "\n".join(lines)


def cpu_name():
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``): timings
    depend on it, and machines of one kind (``x86_64``, N cores) differ."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "CPU model unknown"


def machine():
    return (f"{platform.machine()}, {cpu_name()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}")


_HEADING = re.compile(r"(#{1,6})[ \t]+(.*?)[ \t]*$")
_FENCE = re.compile(r"[ ]{0,3}(```|~~~)")


def _headings(lines):
    """(line index, level, title) of each ATX heading of ``lines``, fenced code blocks skipped."""
    fence = None
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if m:
            fence = m.group(1) if fence is None else (None if m.group(1) == fence else fence)
            continue
        m = None if fence else _HEADING.match(line)
        if m:
            yield i, len(m.group(1)), m.group(2)


def write_section(path, heading, body, replace=True):
    """Put a section titled ``heading`` + ``body`` into the markdown file ``path``; the file is
    created with a title if missing.

    ``replace``: a section of that title, at whatever level it stands (``## heading`` or, under a
    ``##`` group, ``### heading``), is replaced in place at its own level, up to the next heading
    of the same or a higher level; further sections of the same title (left by a rerun that
    appended) are removed. With no such section, or ``replace=False``, a ``## heading`` section is
    appended."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n\nMeasured tables, newest last.\n"
    stamp = datetime.date.today().isoformat()

    def section(level):
        return f"{'#' * level} {heading}\n\n_{stamp}, {machine()}_\n\n{body.strip()}\n"

    lines = text.split("\n")
    found = list(_headings(lines))
    spans = []  # (start, end, level) of each section titled ``heading``
    for n, (i, level, title) in enumerate(found):
        if title == heading.strip() and not (spans and i < spans[-1][1]):
            end = next((j for j, lv, _ in found[n + 1:] if lv <= level), len(lines))
            spans.append((i, end, level))
    if replace and spans:
        for start, end, level in reversed(spans):
            first = start == spans[0][0]
            lines[start:end] = section(level).rstrip("\n").split("\n") + [""] if first else []
        text = "\n".join(lines)
    else:
        text = text.rstrip() + "\n\n" + section(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")
    return path


def publish(body, path, heading):
    """Print a benchmark's markdown ``body`` and, when ``path`` is given, put it into that file
    as the section ``heading``, replacing an earlier one at its level (``write_section``)."""
    print(body)
    if path:
        write_section(path, heading, body)
