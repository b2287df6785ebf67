"""Checks shared by the COCO, VIA and LabelMe annotation-file checks:
points, image sizes and frames, class names, shapes that draw nothing."""

import os

from mrcnn.structures import orientation
from mrcnn.datasets import instances
from mrcnn.datasets import loader_tools as mask_tools
from mrcnn.datasets.check.problem import ERROR, WARNING


def check_points(report, xs, ys, height, width, what):
    """Report NaN/unreadable (error) and out-of-image (warning) points.

    Returns (xs, ys) as float arrays, or None when they are unusable.
    Points at x = width or y = height sit on the border and are fine.
    (VIA and LabelMe shapes are validated first, so only COCO polygons
    reach the error branches.)
    """
    try:
        xs = mask_tools.finite_coordinates(xs, "x coordinates")
        ys = mask_tools.finite_coordinates(ys, "y coordinates")
    except ValueError as error:
        report(ERROR, "{}: {}".format(what, error))
        return None
    if len(xs) != len(ys):
        report(ERROR, "{}: {} x but {} y coordinates".format(what, len(xs),
                                                             len(ys)))
        return None
    if (xs < 0).any() or (ys < 0).any():
        report(WARNING, "{}: negative coordinates (clipped to the image)"
               .format(what))
    if height is not None and ((xs > width).any() or (ys > height).any()):
        report(WARNING, "{}: points beyond the {}x{} image (clipped)".format(
            what, width, height))
    return xs, ys


def image_size_or_report(path, report):
    """(height, width) as stored, from the header, or (None, None) after
    reporting."""
    try:
        return mask_tools.read_image_size(path)
    except FileNotFoundError:
        report(ERROR, "image file not found")
    except ValueError as error:
        report(ERROR, str(error))
    return None, None


def image_frame(path, upright, report):
    """(height, width, EXIF orientation) of the frame the loader reads the
    image's annotations in: the upright one when ``upright``, else the
    stored one. (None, None, 1) after reporting an unreadable image."""
    height, width = image_size_or_report(path, report)
    if height is None:
        return None, None, 1
    tag = orientation.exif_orientation(os.fspath(path))
    if upright:
        height, width = orientation.upright_size(height, width, tag)
    return height, width, tag


def _fits(extent, height, width):
    """True when the extent lies in a [height, width] frame, give or take
    a pixel and 1% (annotation tools let points stray past the border)."""
    slack = 1 + 0.01 * max(height, width)
    x_min, y_min, x_max, y_max = extent
    return (x_min >= -slack and y_min >= -slack
            and x_max <= width + slack and y_max <= height + slack)


def check_frame(extent, height, width, tag, upright, report):
    """Error when an image's annotations (their union extent) leave the
    frame used but fit the other one of its EXIF orientation: they were
    drawn on the other view, and training would clip and misplace them."""
    if extent is None or height is None \
            or tag not in orientation.SWAPS_SIDES:
        return
    if _fits(extent, height, width) or not _fits(extent, width, height):
        return
    if upright:
        used, other = "upright", "stored"
        fix = "load with apply_exif_orientation=False"
    else:
        used, other = "stored", "upright"
        fix = ("load with apply_exif_orientation=True, or rotate the file "
               "itself (exiftran -ai)")
    report(ERROR, "annotations reach x {:.0f}, y {:.0f}: beyond the {}x{} "
                  "(width x height) {} frame used, but inside the {}x{} {} "
                  "frame of EXIF orientation {}, so they were drawn on the "
                  "{} view; {}".format(extent[2], extent[3], width, height,
                                       used, height, width, other, tag,
                                       other, fix))


def check_class_name(name, class_names, class_attribute, what, report):
    if name is None:
        report(ERROR, "{}: no {!r} attribute and no default class".format(
            what, class_attribute))
    elif class_names is not None and name not in class_names:
        report(WARNING, "{}: unknown class {!r} (not in class_names; "
                        "skipped)".format(what, name))


def check_polygon_area(xs, ys, image_shape, what, report):
    """Polygons without area or wholly outside the image are dropped by the
    loaders. (Checked from the points: rasterising is slow for big ones.)"""
    height, width = image_shape
    if len(xs) < 3:
        report(WARNING, "{}: fewer than 3 points (no area; dropped)".format(
            what))
    elif height is not None and instances.is_outside(
            instances.points_extent(xs, ys), image_shape):
        report(WARNING, "{}: wholly outside the {}x{} image (dropped)"
               .format(what, width, height))


def check_rasterises(shape_mask, shape, image_shape, what, report):
    """Run the loader's rasteriser: errors and empty results are found as
    the loader would meet them."""
    try:
        mask = shape_mask(shape, image_shape)
    except (ValueError, TypeError) as error:
        report(ERROR, "{}: {}".format(what, error))
        return
    if mask is not None and not mask.any():
        report(WARNING, "{}: no pixel inside the image (dropped)".format(
            what))
