"""Text tables of an export's verification results."""

from pathlib import Path


def format_export(meta, out):
    m = meta["metrics"]
    rows = [("Keras (reference)", "-", m["keras"]["miou"], m["keras"]["pixel_accuracy"], None)]
    for key, value in m.items():
        if isinstance(value, dict) and "agreement" in value:
            rows.append((f"model_{key}.tflite", f"{value['size_bytes'] / 1024:.0f} KB",
                         value["miou"], value["pixel_accuracy"], value["agreement"]))
    lines = [
        f"exported to {Path(out)} - verified on {m['images']} images of {m['validation_data']}",
        f"{'model':<24} {'size':>10} {'val mIoU':>9} {'pixel acc':>10} {'agrees w/ Keras':>16}",
    ]
    for name, size, miou, acc, agree in rows:
        agree = "-" if agree is None else f"{agree:.2%}"
        lines.append(f"{name:<24} {size:>10} {miou:>9.4f} {acc:>10.4f} {agree:>16}")
    return "\n".join(lines)
