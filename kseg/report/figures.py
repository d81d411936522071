"""Figures (matplotlib, headless)."""

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def save_confusion_matrix(matrix, classes, path, title=None):
    """Row-normalised confusion matrix (rows = truth) with class names, written as PNG."""
    plt = _pyplot()

    m = np.asarray(matrix, dtype=np.float64)
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    n = len(classes)
    size = max(4.0, 0.5 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def save_curves(entries, path, title=None):
    """Training curves from metrics.json entries: loss (train, val) and mIoU (train, val) per epoch."""
    plt = _pyplot()

    epochs = [e["epoch"] for e in entries]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, style in (("loss", "-"), ("val_loss", "--")):
        if any(key in e for e in entries):
            a.plot(epochs, [e.get(key, np.nan) for e in entries], style, marker=".", label=key)
    for key, style in (("miou", "-"), ("val_miou", "--")):
        if any(key in e for e in entries):
            b.plot(epochs, [e.get(key, np.nan) for e in entries], style, marker=".", label=key)
    best = [e["epoch"] for e in entries if e.get("best")]
    if best:
        b.axvline(best[-1], color="grey", lw=0.8, ls=":", label=f"best (epoch {best[-1]})")
    a.set_xlabel("epoch")
    a.set_title("loss")
    b.set_xlabel("epoch")
    b.set_title("mIoU")
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def save_class_iou(classes, iou, path):
    """Horizontal bar chart of per-class IoU."""
    plt = _pyplot()

    values = [0.0 if v != v else v for v in iou]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(classes) + 1))
    ax.barh(range(len(classes)), values, color="tab:blue")
    ax.set_yticks(range(len(classes)), classes)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("IoU")
    for i, v in enumerate(iou):
        ax.text(min(values[i] + 0.01, 0.9), i, "n/a" if v != v else f"{v:.3f}", va="center", fontsize=7)
    return _save(fig, path)


def triptych(image, truth, pred, num_classes, ignore_index=255):
    """image | truth | prediction as one uint8 array (ignored truth pixels drawn black)."""
    from kseg.runtime import colourize

    t = np.asarray(truth).astype(np.int64)
    ignored = t == ignore_index
    truth_rgb = colourize(np.where(ignored, 0, t), num_classes)
    truth_rgb[ignored] = 0
    return np.concatenate([np.asarray(image, np.uint8), truth_rgb,
                           colourize(np.asarray(pred), num_classes)], axis=1)
