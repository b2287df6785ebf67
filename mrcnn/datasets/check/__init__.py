"""Find what is wrong with a dataset before training on it.

Three levels, each returning a list of :class:`Problem`:

* :func:`check_annotation_file` reads one COCO / VIA / LabelMe json and finds
  what a loader would choke on (broken json, unknown image file or class,
  NaN or out-of-range coordinates, annotations drawn in the other EXIF
  frame) without decoding any image;
* :func:`check_dataset` reads every image and mask of a prepared
  :class:`mrcnn.utils.Dataset` (any subclass, yours too) and checks what
  training relies on, counting the instances training would drop;
* :func:`check_path` does both for a path, detecting its format; this is
  what ``mrcnn check-dataset PATH`` runs.

A problem with severity "error" stops training or corrupts it; a
"warning" is worth a look (clipped points, images without instances,
dropped instances: :func:`dropped_counts` sums those by cause).
"""

import os
import warnings

from mrcnn.datasets import labelme as labelme_format
from mrcnn.datasets.check.annotations import (check_annotation_file,
                                              json_format)
from mrcnn.datasets.check.prepared import check_dataset, describe_image
from mrcnn.datasets.check.problem import (ERROR, WARNING, Problem,
                                          dropped_counts, has_errors)

__all__ = ["ERROR", "WARNING", "Problem", "has_errors", "dropped_counts",
           "check_dataset", "describe_image", "check_annotation_file",
           "json_format", "check_path"]


def check_path(path, format=None, subset=None, **options):  # noqa: A002
    """Detect the format of ``path`` and list every problem found.

    path: a COCO/VIA/LabelMe json file or a dataset folder (VIA folder,
        LabelMe folder, masks folder; with ``subset``, ``path/subset``).
    options: passed to the loader (class_attribute, class_names, ...).
    The dataset is then loaded and every image and mask read
    (:func:`check_dataset`); problems already reported for an image by the
    annotation check are not repeated. Any "error" means unusable.
    """
    from mrcnn.datasets import locate_dataset, load_dataset

    try:
        format, target, load_options = locate_dataset(path, format, subset)
    except (OSError, ValueError) as error:
        return [Problem(ERROR, os.fspath(path), str(error))]
    problems = _check_annotations(format, target, load_options, options)
    broken_files = {p.file for p in problems if p.is_error
                    and p.file.lower().endswith(".json")}
    if broken_files & _annotation_files(format, target):
        return problems  # the loader would stop at the same point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped images/classes: reported
        try:
            dataset = load_dataset(target, format=format, skip_missing=True,
                                   **load_options, **options)
        except Exception as error:  # noqa: BLE001
            return problems + [Problem(ERROR, os.fspath(target),
                                       "cannot load the dataset: {}".format(
                                           error))]
    reported = {p.file for p in problems if p.is_error}
    return problems + [p for p in check_dataset(dataset)
                       if p.file not in reported]


def _annotation_files(format, target):  # noqa: A002
    """Normalised annotation json paths of a located dataset."""
    if format in ("coco", "via"):
        return {os.path.normpath(target)}
    if format == "labelme":
        return {os.path.normpath(p)
                for p in labelme_format.labelme_json_files(target)}
    return set()


def _check_annotations(format, target, load_options, options):  # noqa: A002
    options = dict(options, **load_options)
    if format == "labelme":
        return [p for path in labelme_format.labelme_json_files(target)
                for p in check_annotation_file(path, "labelme", **options)]
    if format in ("coco", "via"):
        return check_annotation_file(target, format, **options)
    return []
