"""Ready-made dataset loaders, so annotated images need no code of your own.

Each loader is an :class:`mrcnn.utils.Dataset` subclass:

* :class:`CocoDataset` - COCO instances json (polygons, RLE, crowd);
* :class:`ViaDataset` - VGG Image Annotator 1.x / 2.x json;
* :class:`LabelMeDataset` - a folder of LabelMe json files;
* :class:`MasksDataset` - images with mask PNGs (per instance or label
  images).

:func:`load_dataset` detects the format of a path and returns a prepared
dataset::

    from mrcnn.datasets import load_dataset, check_path
    train = load_dataset("balloon", subset="train")
    problems = check_path("balloon/train")
"""

import os

from mrcnn.structures.class_identity import align_classes
from mrcnn.datasets.coco import CocoDataset
from mrcnn.datasets.labelme import LabelMeDataset
from mrcnn.datasets.masks import MasksDataset, detect_masks_layout
from mrcnn.datasets.via import ViaDataset, find_via_json
from mrcnn.datasets import loader_tools as _mask_tools
from mrcnn.datasets.check import (Problem, check_annotation_file,
                                  check_dataset, check_path, dropped_counts,
                                  has_errors, json_format)

FORMATS = ("coco", "via", "labelme", "masks")

_LOADERS = {
    "coco": (CocoDataset, "load_coco"),
    "via": (ViaDataset, "load_via"),
    "labelme": (LabelMeDataset, "load_labelme"),
    "masks": (MasksDataset, "load_masks"),
}


def detect_format(path):
    """"coco", "via", "labelme" or "masks" for a json file or a folder.

    Raises ValueError explaining what was expected when none fits.
    """
    return locate_dataset(path)[0]


def locate_dataset(path, format=None, subset=None):  # noqa: A002
    """(format, loader target, extra loader options) for a path.

    The target is the annotation json for COCO and VIA, the folder for
    LabelMe and masks. ``subset`` picks ``path/subset``, or for a COCO
    folder in matterport's layout ``annotations/instances_{subset}*.json``.
    """
    path = os.fspath(path)
    if format is not None and format not in FORMATS:
        raise ValueError("unknown dataset format {!r}; expected one of {}"
                         .format(format, ", ".join(FORMATS)))
    if subset:
        coco = _matterport_coco(path, subset)
        if coco is not None and format in (None, "coco"):
            return coco
        path = os.path.join(path, subset)
    if not os.path.exists(path):
        raise FileNotFoundError("dataset path not found: {}".format(path))
    if os.path.isfile(path):
        return _locate_file(path, format)
    return _locate_folder(path, format)


def load_dataset(path, format=None, subset=None,  # noqa: A002
                 reference_classes=None, **options):
    """Load and prepare the dataset at ``path`` (format auto-detected).

    reference_classes: the class names whose ids this dataset must use, in
        id order ("BG" first or not): pass the training set's
        ``class_names`` for a validation or test set, so that each class
        gets the training set's id by name. Classes it lacks are fine; a
        class not in them is a ValueError naming the file and the class.
        None: the loader's own numbering (see mrcnn.structures.class_identity).
    options go to the loader (e.g. class_attribute for VIA, class_names),
    except apply_exif_orientation, which sets that Dataset attribute
    before loading (default: the loader's own, True for LabelMe only).
    Returns a prepared Dataset of the matching class.
    """
    format, target, extra = locate_dataset(path, format, subset)
    dataset_class, method = _LOADERS[format]
    dataset = dataset_class()
    upright = options.pop("apply_exif_orientation", None)
    if upright is not None:
        dataset.apply_exif_orientation = bool(upright)
    if format == "masks":
        options.pop("skip_missing", None)  # every masks image is a file
    getattr(dataset, method)(target, **dict(extra, **options))
    if reference_classes is not None:
        align_classes(dataset, reference_classes, target,
                      lambda name: _class_file(dataset, name))
    dataset.prepare()
    return dataset


def _class_file(dataset, name):
    """The first annotation file of a loaded dataset that uses class name
    (LabelMe json, mask PNG, label sidecar), or None (one file for all)."""
    for info in dataset.image_info:
        labels = [s.get("label") for s in info.get("shapes", [])]
        if name in labels:
            return info.get("json_path")
        for mask_path, mask_class in info.get("mask_files", []):
            if mask_class == name:
                return mask_path
        if name in (info.get("label_classes") or {}).values():
            return info.get("sidecar_path")
    return None


def _locate_file(path, format):  # noqa: A002
    if format == "masks":
        raise ValueError("{}: a masks dataset is a folder, not a file".format(
            path))
    found = json_format(_mask_tools.read_json(path))
    if found is None:
        raise ValueError("{}: not a COCO, VIA or LabelMe annotation file"
                         .format(path))
    if format is not None and format != found:
        raise ValueError("{}: looks like {} json, not {}".format(
            path, found, format))
    return found, path, {}


def _locate_folder(path, format, hint=True):  # noqa: A002
    if format in (None, "masks") and detect_masks_layout(path):
        return "masks", path, {}
    by_format = _classify_json_files(path)
    order = [format] if format else ["via", "coco", "labelme"]
    for name in order:
        files = by_format.get(name, [])
        if name == "labelme" and files:
            return "labelme", path, {}
        if name == "via" and files:
            return "via", _one_file(path, files, find_via_json), {}
        if name == "coco" and files:
            return "coco", _one_file(path, files, None), {}
    raise ValueError(
        "{}: cannot tell the dataset format{}: expected a COCO or VIA json, "
        "LabelMe json files, <id>/images/ + <id>/masks/ folders, or "
        "images/ + labels/ folders{}".format(
            path, " ({} requested)".format(format) if format else "",
            _subset_hint(path, format) if hint else ""))


def _subset_hint(path, format):  # noqa: A002
    """A hint naming sub-folders that are datasets (e.g. train/, val/)."""
    subsets = []
    for name in sorted(os.listdir(path)):
        folder = os.path.join(path, name)
        if not os.path.isdir(folder) or name.startswith("."):
            continue
        try:
            _locate_folder(folder, format, hint=False)
            subsets.append(name)
        except (OSError, ValueError):
            pass
    if not subsets:
        return ""
    return "; its sub-folders {} are datasets: pass one as the subset"\
        .format(", ".join(subsets))


def _classify_json_files(folder):
    """{format: [json paths]} for the .json files directly in folder."""
    by_format = {}
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(".json"):
            continue
        full = os.path.join(folder, name)
        try:
            found = json_format(_mask_tools.read_json(full))
        except (OSError, ValueError):
            # A broken json in a LabelMe folder is still a LabelMe dataset
            # (the check names the file); elsewhere, guess from the name.
            found = "via" if name.startswith("via") else "broken"
        by_format.setdefault(found, []).append(full)
        if found == "labelme":
            # One per image, possibly thousands with embedded pixels: the
            # first one decides instead of reading them all twice.
            return {"labelme": [full]}
    if "broken" in by_format and not (set(by_format) - {"broken"}):
        raise ValueError("{}: cannot read {}".format(
            folder, ", ".join(by_format["broken"])))
    return by_format


def _one_file(folder, files, finder):
    if len(files) == 1:
        return files[0]
    if finder is not None:
        try:
            return finder(folder)
        except FileNotFoundError:
            pass
    raise ValueError("{}: several annotation files ({}); pass one".format(
        folder, ", ".join(os.path.basename(f) for f in files)))


def _matterport_coco(path, subset):
    """COCO in matterport's layout (annotations/instances_{subset}YEAR.json
    + {subset}YEAR/), or None."""
    annotations = os.path.join(path, "annotations")
    if not os.path.isdir(annotations):
        return None
    matches = sorted(n for n in os.listdir(annotations)
                     if n.startswith("instances_{}".format(subset))
                     and n[len("instances_{}".format(subset)):-5].isdigit()
                     and n.endswith(".json"))
    if len(matches) != 1:
        return None
    year = matches[0][len("instances_{}".format(subset)):-5]
    image_subset = "val" if subset in ("minival", "valminusminival") \
        else subset
    return ("coco", os.path.join(annotations, matches[0]),
            {"image_dir": os.path.join(path, image_subset + year)})


__all__ = [
    "CocoDataset", "ViaDataset", "LabelMeDataset", "MasksDataset",
    "load_dataset", "detect_format", "locate_dataset", "FORMATS",
    "Problem", "check_dataset", "check_annotation_file", "check_path",
    "has_errors", "dropped_counts",
]
