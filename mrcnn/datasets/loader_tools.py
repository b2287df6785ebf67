"""What every loader shares: image files and json, annotation shapes
rasterised to boolean masks, instance stacking and class registration.

Every shape helper takes the image ``shape=(height, width)`` and clips to
it, so a point on or past the border never raises. Coordinates are pixels,
x to the right and y down, with pixel ``(row, col)`` centred on
``(y, x) = (row, col)``.
"""

import json
import os
import warnings

import numpy as np
import skimage.draw
import skimage.io
from PIL import Image

from mrcnn.structures import orientation, polygons
from mrcnn.structures.polygons import clip_polygon  # noqa: F401 (loaders)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif",
                    ".webp")


# ---------------------------------------------------------------------------
# Image files
# ---------------------------------------------------------------------------

def is_image_file(path):
    """True for a file name with a known image extension."""
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def read_image_size(path, upright=False):
    """(height, width) of an image file, read from its header where possible.

    upright: the size of the upright frame of an EXIF-rotated photo (sides
    swapped for orientations 5-8; see mrcnn.structures.orientation), not the stored one.
    Raises FileNotFoundError naming the file when it does not exist and
    ValueError when it is not a readable image.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError("image file not found: {}".format(path))
    height, width = _stored_image_size(path)
    if upright:
        return orientation.upright_size(height, width,
                                        orientation.exif_orientation(path))
    return height, width


def _stored_image_size(path):
    """(height, width) of the pixels as stored in the file."""
    try:
        # PIL parses only the header here; the pixels are not decoded.
        with Image.open(path) as image:
            width, height = image.size
        return int(height), int(width)
    except Exception:  # noqa: BLE001 - fall back to a full decode below
        pass
    try:
        with warnings.catch_warnings():
            # imageio probing its plugins on a non-image warns about
            # deprecated ones; the error below says what went wrong.
            warnings.simplefilter("ignore", DeprecationWarning)
            image = skimage.io.imread(path)
    except Exception as error:  # noqa: BLE001
        raise ValueError("cannot read image {}: {}".format(path, error)) \
            from error
    return int(image.shape[0]), int(image.shape[1])


def read_json(path):
    """Parsed json; ValueError naming the file and position when broken."""
    try:
        with open(path, encoding="utf-8-sig") as f:  # BOM from Windows tools
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError("{}: broken json at line {} column {}: {}".format(
            path, error.lineno, error.colno, error.msg)) from error


# ---------------------------------------------------------------------------
# Shapes -> masks
# ---------------------------------------------------------------------------

def finite_coordinates(values, name):
    """``values`` as a float64 1-D array; ValueError if any is NaN/inf/text."""
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        items = np.asarray(values, dtype=object).reshape(-1)
    except (TypeError, ValueError) as error:
        raise ValueError("{} are not numbers: {!r}".format(name, values)) \
            from error
    if any(isinstance(v, (str, bytes)) for v in items):
        # numpy would quietly parse "12"; annotation tools write numbers.
        raise ValueError("{} are text, not numbers: {!r}".format(name,
                                                                 values))
    if not np.all(np.isfinite(array)):
        raise ValueError("{} contain NaN or infinite values: {}"
                         .format(name, values))
    return array


def polygon_mask(xs, ys, shape):
    """Bool mask [height, width] inside the polygon with vertices (xs, ys).

    Pixels on the outline count as inside: skimage.draw.polygon's pixels,
    drawn faster (mrcnn.structures.polygons); parts past the image border
    are clipped. Fewer than 3 vertices give an empty mask.
    """
    xs = finite_coordinates(xs, "x coordinates")
    ys = finite_coordinates(ys, "y coordinates")
    if len(xs) != len(ys):
        raise ValueError("polygon has {} x but {} y coordinates"
                         .format(len(xs), len(ys)))
    if len(xs) < 3:
        return np.zeros(shape, dtype=bool)
    return polygons.fill_polygon(xs, ys, shape)


def rectangle_mask(x, y, width, height, shape):
    """Bool mask [height, width] of the box whose top-left corner is (x, y).

    Covers columns x .. x + width - 1 and rows y .. y + height - 1 (after
    rounding), i.e. ``width * height`` pixels when inside the image. Negative
    sizes are measured from the other corner.
    """
    x, y, width, height = finite_coordinates([x, y, width, height],
                                             "rectangle values")
    x1, x2 = sorted((x, x + width))
    y1, y2 = sorted((y, y + height))
    return box_mask(y1, x1, y2, x2, shape)


def box_mask(y1, x1, y2, x2, shape):
    """Bool mask of rows round(y1)..round(y2)-1, cols round(x1)..round(x2)-1,
    clipped to the image."""
    rows, cols = shape
    top, bottom = [int(np.clip(np.round(v), 0, rows)) for v in (y1, y2)]
    left, right = [int(np.clip(np.round(v), 0, cols)) for v in (x1, x2)]
    mask = np.zeros(shape, dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def circle_mask(cx, cy, radius, shape):
    """Bool mask of the pixels closer than ``radius`` to (cx, cy)."""
    cx, cy, radius = finite_coordinates([cx, cy, radius], "circle values")
    mask = np.zeros(shape, dtype=bool)
    if radius > 0:
        rows, cols = skimage.draw.disk((cy, cx), radius, shape=shape)
        mask[rows, cols] = True
    return mask


def ellipse_mask(cx, cy, rx, ry, theta, shape):
    """Bool mask of an ellipse centred at (cx, cy) with radii rx (along x
    before rotation) and ry, rotated by ``theta`` radians clockwise on screen
    (y down), as VIA and HTML canvas draw it."""
    cx, cy, rx, ry, theta = finite_coordinates([cx, cy, rx, ry, theta],
                                               "ellipse values")
    mask = np.zeros(shape, dtype=bool)
    if rx > 0 and ry > 0:
        # skimage turns counter-clockwise on screen, hence -theta.
        rows, cols = skimage.draw.ellipse(cy, cx, ry, rx, shape=shape,
                                          rotation=-theta)
        mask[rows, cols] = True
    return mask


def stack_instances(masks, class_ids, shape):
    """Stack per-instance masks, dropping empty ones.

    masks: list of bool [height, width]; class_ids: matching list of ints.
    Returns (bool [height, width, N], int32 [N]); N may be 0.
    """
    kept = [(m, c) for m, c in zip(masks, class_ids) if m.any()]
    if not kept:
        return (np.zeros(tuple(shape) + (0,), dtype=bool),
                np.zeros([0], dtype=np.int32))
    mask = np.stack([m for m, _ in kept], axis=2).astype(bool)
    return mask, np.array([c for _, c in kept], dtype=np.int32)


def internal_class_id(dataset, source, source_class_id):
    """Internal (contiguous) class id of ``source.source_class_id``.

    Needs ``dataset.prepare()``; says so instead of an AttributeError.
    """
    if not hasattr(dataset, "class_from_source_map"):
        raise RuntimeError("{}: call prepare() before load_mask()"
                           .format(type(dataset).__name__))
    return dataset.map_source_class_id("{}.{}".format(source,
                                                      source_class_id))


def add_classes(dataset, source, class_names):
    """add_class for each name, with source ids 1..K in the given order.

    Returns {name: source class id}.
    """
    ids = {}
    for index, name in enumerate(class_names, start=1):
        dataset.add_class(source, index, name)
        ids[name] = index
    return ids


def warn_skipped_classes(skipped, where):
    """One warning listing labels that are not in class_names."""
    if skipped:
        warnings.warn("{}: skipped regions of classes not in class_names: {}"
                      .format(where, ", ".join(sorted(skipped))), stacklevel=3)
