"""Checks of a LabelMe json, without decoding its image file."""

import os

import numpy as np

from mrcnn.datasets import instances
from mrcnn.datasets import labelme as labelme_format
from mrcnn.datasets.check import common
from mrcnn.datasets.check.problem import ERROR, WARNING, Collector


def check_labelme_json(data, json_path, class_names=None,
                       apply_exif_orientation=None):
    """Problems of one parsed LabelMe json. apply_exif_orientation: None or
    True reads the image in its EXIF-upright frame, as LabelMe does."""
    out = Collector(json_path)
    if not labelme_format.is_labelme_json(data):
        out.add(ERROR, json_path, "not a LabelMe annotation")
        return out.problems
    image_path = os.path.normpath(os.path.join(os.path.dirname(json_path),
                                               data.get("imagePath") or ""))
    where = image_path if data.get("imagePath") else json_path

    def report(severity, message):
        out.add(severity, where, "{}: {}".format(json_path, message))

    upright = apply_exif_orientation is not False
    height, width, tag = _labelme_image_frame(data, image_path, upright,
                                              report)
    extents = [_check_labelme_shape(shape, index, (height, width),
                                    class_names, report)
               for index, shape in enumerate(data.get("shapes") or [])]
    common.check_frame(instances.union_extent(extents), height, width, tag,
                       upright, report)
    return out.problems


def _labelme_image_frame(data, image_path, upright, report):
    """(height, width, EXIF orientation) of the frame the loader uses;
    an embedded image has no orientation to apply."""
    tag = 1
    if data.get("imagePath") and os.path.isfile(image_path):
        height, width, tag = common.image_frame(image_path, upright, report)
    elif data.get("imageData"):
        try:
            height, width = labelme_format.decode_image_data(
                data["imageData"], "imageData").shape[:2]
        except ValueError as error:
            report(ERROR, str(error))
            return None, None, 1
    else:
        report(ERROR, "image file not found and no imageData")
        return None, None, 1
    stated = (data.get("imageHeight"), data.get("imageWidth"))
    if height is not None and None not in stated \
            and tuple(stated) != (height, width):
        report(WARNING, "json says {}x{} (height x width) but the image is "
                        "{}x{} (the image size is used)".format(
                            stated[0], stated[1], height, width))
    return height, width, tag


def _check_labelme_shape(shape, index, image_shape, class_names, report):
    """Reports a shape's problems; returns its extent (None when it has no
    usable area)."""
    what = "shape {}".format(index)
    try:
        labelme_format.validate_shape(shape)  # what the loader rejects
    except ValueError as error:
        report(ERROR, "{}: {}".format(what, error))
        return None
    label = shape["label"]
    if label not in labelme_format.IGNORED_LABELS:
        common.check_class_name(label, class_names, None, what, report)
    kind = shape.get("shape_type") or "polygon"
    if kind in labelme_format.SKIPPED_SHAPES:
        report(WARNING, "{}: {} has no area (skipped)".format(what, kind))
        return None
    points = np.reshape(np.asarray(shape["points"], dtype=np.float64),
                        (-1, 2))
    height, width = image_shape
    common.check_points(report, points[:, 0], points[:, 1], height, width,
                        what)
    if kind == "polygon":
        common.check_polygon_area(points[:, 0], points[:, 1], image_shape,
                                  what, report)
    elif height is not None:
        common.check_rasterises(labelme_format.shape_mask, shape,
                                image_shape, what, report)
    return labelme_format.shape_extent(shape)
