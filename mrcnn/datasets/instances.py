"""Rasterised instances of the loaders: keep those with pixels, report the
others (mrcnn.structures.dropped) with why they have none.

A shape's extent is ``(x_min, y_min, x_max, y_max)`` in pixels (x to the
right, y down, pixel ``(row, col)`` centred on ``(y, x) = (row, col)``), or
None when it has no points to speak of (an RLE).
"""

import numpy as np

from mrcnn.structures import dropped
from mrcnn.datasets import loader_tools as mask_tools


def points_extent(xs, ys):
    """Extent of a set of points; None when there is none."""
    xs = np.asarray(xs, dtype=np.float64).reshape(-1)
    ys = np.asarray(ys, dtype=np.float64).reshape(-1)
    if xs.size == 0 or ys.size == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def union_extent(extents):
    """Extent covering every extent given (None entries ignored)."""
    known = [e for e in extents if e is not None]
    if not known:
        return None
    return (min(e[0] for e in known), min(e[1] for e in known),
            max(e[2] for e in known), max(e[3] for e in known))


def is_outside(extent, image_shape):
    """True when no pixel centre of a [height, width] image lies within the
    extent (then no rasteriser can give the shape a pixel)."""
    if extent is None:
        return False
    height, width = image_shape
    x_min, y_min, x_max, y_max = extent
    return x_max < 0 or y_max < 0 or x_min > width - 1 or y_min > height - 1


def empty_cause(extent, image_shape):
    """Why a shape of that extent rasterised to no pixel: a CAUSES key."""
    return "outside_image" if is_outside(extent, image_shape) else "no_area"


def keep_drawn(dataset, image_id, masks, class_ids, extents, image_shape,
               cause=None):
    """Stacks the instance masks that have a pixel; reports the others.

    masks: list of bool [height, width]; class_ids: matching ints;
    extents: matching shape extents (see the module doc). cause: one cause
    for every empty mask, instead of judging each from its extent.
    Returns (bool [height, width, N], int32 [N]).
    """
    dropped_by_cause = {}
    for mask, extent in zip(masks, extents):
        if not mask.any():
            why = cause or empty_cause(extent, image_shape)
            dropped_by_cause[why] = dropped_by_cause.get(why, 0) + 1
    for why, count in sorted(dropped_by_cause.items()):
        dropped.report(dataset, image_id, why, count, len(masks))
    return mask_tools.stack_instances(masks, class_ids, image_shape)
