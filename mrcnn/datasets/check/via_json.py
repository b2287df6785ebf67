"""Checks of a VIA json (1.x or 2.x), without decoding images."""

import os

from mrcnn.datasets import instances
from mrcnn.datasets import via as via_format
from mrcnn.datasets.check import common
from mrcnn.datasets.check.problem import ERROR, WARNING, Collector


def check_via_json(data, json_path, class_attribute=None, class_names=None,
                   default_class="object", apply_exif_orientation=None):
    """Problems of parsed VIA json. apply_exif_orientation: read the images
    in their EXIF-upright frame (default: stored, as matterport)."""
    out = Collector(json_path)
    try:
        entries = via_format.via_entries(data, json_path)
    except ValueError as error:
        out.add(ERROR, json_path, str(error))
        return out.problems
    image_dir = os.path.dirname(json_path)
    default_class = via_format.single_class_name(class_attribute, class_names,
                                                 default_class)
    upright = bool(apply_exif_orientation)
    seen = {}
    for entry in entries:
        path = os.path.normpath(os.path.join(image_dir, entry["filename"]))

        def report(severity, message, path=path):
            out.add(severity, path, "{}: {}".format(json_path, message))

        if path in seen:
            report(ERROR, "image {} has two entries: its regions are split"
                   .format(entry["filename"]))
        seen[path] = True
        height, width, tag = common.image_frame(path, upright, report)
        extents = [
            _check_via_region(region, index, (height, width), report,
                              class_attribute, class_names, default_class)
            for index, region in enumerate(via_format.entry_regions(entry))]
        common.check_frame(instances.union_extent(extents), height, width,
                           tag, upright, report)
    return out.problems


def _check_via_region(region, index, image_shape, report, class_attribute,
                      class_names, default_class):
    """Reports a region's problems; returns its extent (None when it has
    no usable shape)."""
    what = "region {}".format(index)
    try:
        name = via_format.region_class(region, class_attribute,
                                       default_class)
    except ValueError as error:
        report(ERROR, "{}: {}".format(what, error))
        return None
    common.check_class_name(name, class_names, class_attribute, what, report)
    shape = region.get("shape_attributes") or {}
    kind = shape.get("name")
    if kind in via_format.SKIPPED_SHAPES:
        report(WARNING, "{}: {} shape has no area (skipped)".format(what,
                                                                   kind))
        return None
    try:
        via_format.validate_shape(shape)  # what the loader rejects
    except ValueError as error:
        report(ERROR, "{}: {}".format(what, error))
        return None
    height, width = image_shape
    points = common.check_points(report, *_via_points(shape), height, width,
                                 what)
    if kind in ("polygon", "polyline"):
        common.check_polygon_area(*points, image_shape, what, report)
    elif height is not None:
        common.check_rasterises(via_format.shape_mask, shape, image_shape,
                                what, report)
    return via_format.shape_extent(shape)


def _via_points(shape):
    """(xs, ys) that define a valid VIA shape, for the bounds check."""
    kind = shape.get("name")
    if kind in ("polygon", "polyline"):
        return shape["all_points_x"], shape["all_points_y"]
    if kind == "rect":
        x, y, w, h = (float(shape[k]) for k in ("x", "y", "width", "height"))
        return [x, x + w], [y, y + h]
    return [shape["cx"]], [shape["cy"]]
