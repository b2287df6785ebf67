"""What the command line writes: one output name per input image, and the
JSON reports written whole or not at all (mrcnn.atomic_files), so a run
never overwrites its own outputs and an interrupted one leaves no half
file.
"""

import os

from mrcnn import atomic_files


def output_stems(paths):
    """A distinct file stem for each input path, in order.

    The stem of the file name ("photos/img.jpg" -> "img"); a stem already
    given to an earlier input (compared case-insensitively, as macOS and
    Windows file systems do) gets "_2", "_3", ... appended, so that
    "a/img.jpg" and "b/img.png" write "img_detections.png" and
    "img_2_detections.png" instead of one over the other.
    """
    taken, stems = set(), []
    for path in paths:
        base = os.path.splitext(os.path.basename(os.fspath(path)))[0]
        stem, count = base, 1
        while stem.lower() in taken:
            count += 1
            stem = "{}_{}".format(base, count)
        taken.add(stem.lower())
        stems.append(stem)
    return stems


def write_json(path, value, **dump_kwargs):
    """value as JSON (numpy numbers as Python ones) to path, atomically."""
    atomic_files.write_json(path, jsonable(value), **dump_kwargs)


def write_evaluation(metrics, folder):
    """metrics.json, confusion_matrix.png and per_class_ap.png in folder.
    Returns {kind: path}."""
    import matplotlib.pyplot as plt
    from mrcnn import visualize
    plt.switch_backend("agg")  # files only: a command opens no window
    os.makedirs(folder, exist_ok=True)
    paths = {name: os.path.join(folder, name + suffix) for name, suffix in (
        ("metrics", ".json"), ("confusion_matrix", ".png"),
        ("per_class_ap", ".png"))}
    write_json(paths["metrics"], metrics, indent=1)
    visualize.plot_confusion_matrix(metrics["confusion"],
                                    save_path=paths["confusion_matrix"])
    visualize.plot_per_class_ap(
        {kind: metrics[kind]["per_class"] for kind in ("bbox", "segm")
         if kind in metrics}, save_path=paths["per_class_ap"])
    return paths


def jsonable(value):
    """value with numpy numbers made Python ones and dict keys strings."""
    import numpy as np
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value
