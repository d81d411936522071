"""Text tables of an export's verification results."""

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
