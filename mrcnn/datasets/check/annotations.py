"""check_annotation_file: one COCO / VIA / LabelMe json, without decoding
images (their headers give the sizes and EXIF orientations)."""

import os

from mrcnn.datasets import coco as coco_format
from mrcnn.datasets import labelme as labelme_format
from mrcnn.datasets import loader_tools as mask_tools
from mrcnn.datasets.check.coco_json import check_coco_json
from mrcnn.datasets.check.labelme_json import check_labelme_json
from mrcnn.datasets.check.problem import ERROR, Problem
from mrcnn.datasets.check.via_json import check_via_json

_CHECKERS = {"coco": check_coco_json, "via": check_via_json,
             "labelme": check_labelme_json}

# The loader options that change what is valid, by format.
_OPTIONS = {"coco": ("image_dir", "apply_exif_orientation"),
            "via": ("class_attribute", "class_names", "default_class",
                    "apply_exif_orientation"),
            "labelme": ("class_names", "apply_exif_orientation")}


def check_annotation_file(path, format=None, **options):  # noqa: A002
    """Check one annotation json without decoding images.

    format: "coco", "via" or "labelme" (default: from the content).
    options: the loader's options that change what is valid: image_dir
        (COCO), class_attribute, class_names, default_class (VIA),
        class_names (LabelMe), and apply_exif_orientation (the frame the
        annotations are read in; default upright for LabelMe, stored for
        COCO and VIA, as their loaders).
    """
    path = os.fspath(path)
    try:
        data = mask_tools.read_json(path)
    except (OSError, ValueError) as error:
        return [Problem(ERROR, os.path.normpath(path), str(error))]
    format = format or json_format(data)
    if format not in _CHECKERS:
        return [Problem(ERROR, path, "not a COCO, VIA or LabelMe annotation "
                                     "file")]
    return _CHECKERS[format](data, path, **_options_for(format, options))


def json_format(data):
    """"coco", "via", "labelme" or None for parsed json."""
    if coco_format.is_coco_json(data):
        return "coco"
    if labelme_format.is_labelme_json(data):
        return "labelme"
    if isinstance(data, dict) and "_via_img_metadata" in data:
        return "via"
    if isinstance(data, dict) and data and all(
            isinstance(v, dict) and "filename" in v for v in data.values()):
        return "via"
    return None


def _options_for(format, options):  # noqa: A002
    return {k: v for k, v in options.items() if k in _OPTIONS[format]}
