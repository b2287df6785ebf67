"""Figures of an evaluation: the confusion matrix and per-class AP.

Both are re-exported by mrcnn.visualize and follow its conventions
(``ax=``, ``save_path=``; shown on an interactive backend, returned as a
Figure otherwise). Their input is what mrcnn.evaluation.evaluate.evaluate_model
returns: ``metrics["confusion"]`` and ``metrics["bbox"]["per_class"]`` /
``metrics["segm"]["per_class"]``.
"""

import itertools

import numpy as np

from mrcnn.drawing.figures import _figure_and_axes, _finish


def plot_confusion_matrix(confusion, ax=None, normalize=False, title=None,
                          save_path=None):
    """Draws a detection confusion matrix with its counts.

    confusion: evaluate_model's metrics["confusion"] (a dict with "matrix",
        "rows", "columns", "iou_threshold", see
        mrcnn.evaluation.error_analysis.confusion_summary).
    normalize: color (and print) each row as shares of its total, so that
        rare classes read as well as common ones.
    Rows are ground truth (the first, "false positive", has none), columns
    predictions (the first, "missed", none).
    Returns the Figure (None when shown on an interactive backend).
    """
    matrix = np.asarray(confusion["matrix"], dtype=np.float64)
    rows, columns = confusion["rows"], confusion["columns"]
    size = 2 + 0.6 * len(columns)
    fig, ax, created = _figure_and_axes(ax, (size + 2, size))
    shown = matrix
    if normalize:
        totals = matrix.sum(axis=1, keepdims=True)
        shown = np.divide(matrix, totals, out=np.zeros_like(matrix),
                          where=totals > 0)
    image = ax.imshow(shown, interpolation="nearest", cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(np.arange(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(np.arange(len(rows)), rows)
    dark = shown.max() / 2.0 if shown.size else 0
    for i, j in itertools.product(range(len(rows)), range(len(columns))):
        text = ("{:.2f}".format(shown[i, j]) if normalize
                else str(int(matrix[i, j])))
        ax.text(j, i, text, ha="center", va="center", fontsize=9,
                color="white" if shown[i, j] > dark else "black")
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("Ground-truth class")
    ax.set_title(title or "Confusion matrix ({} IoU >= {:g})".format(
        confusion.get("iou_type", "segm"), confusion["iou_threshold"]))
    fig.tight_layout()
    return _finish(fig, created, save_path)


def plot_per_class_ap(per_class, ax=None, title="AP per class",
                      save_path=None):
    """Bar chart of AP per class, one bar group per class.

    per_class: {series name: {class name: AP}}, e.g.
        ``{"bbox": metrics["bbox"]["per_class"], "segm": ...}``; a plain
        {class name: AP} draws one series. AP -1 (no ground truth
        nor detection of that class) is drawn as no bar, labelled "n/a".
    Returns the Figure (None when shown on an interactive backend).
    """
    if per_class and not isinstance(next(iter(per_class.values())), dict):
        per_class = {"AP": per_class}
    series = list(per_class)
    classes = list(dict.fromkeys(
        name for values in per_class.values() for name in values))
    width = 0.8 / max(len(series), 1)
    fig, ax, created = _figure_and_axes(
        ax, (max(4, 1.2 * len(classes) + 2), 4))
    positions = np.arange(len(classes))
    for k, name in enumerate(series):
        values = np.array([per_class[name].get(c, -1.0) for c in classes],
                          dtype=np.float64)
        offsets = positions + (k - (len(series) - 1) / 2) * width
        bars = ax.bar(offsets, np.where(values >= 0, values, 0), width,
                      label=name)
        ax.bar_label(bars, ["{:.2f}".format(v) if v >= 0 else "n/a"
                            for v in values], fontsize=8)
    ax.set_xticks(positions, classes, rotation=45, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("AP")
    ax.set_title(title)
    if len(series) > 1:
        ax.legend()
    fig.tight_layout()
    return _finish(fig, created, save_path)
