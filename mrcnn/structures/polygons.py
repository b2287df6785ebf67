"""Polygons to boolean masks: scikit-image's pixels at OpenCV's speed.

``skimage.draw.polygon`` decides every pixel of the polygon's bounding box
with a point-in-polygon test against every edge: a 60-vertex balloon
outline in a 2048 px photo costs some 180 ms, most of the training feed's
time on VIA data. OpenCV's ``fillPoly`` fills the same polygon in well
under a millisecond, but decides pixels on the outline by its own
rasteriser, so its edges differ from scikit-image's by a pixel here and
there. ``fill_polygon`` takes OpenCV's fill away from the outline and
scikit-image's own test (``skimage.measure.points_in_poly``, the function
``skimage.draw.polygon`` runs per pixel, with the same argument order) on
a band of BAND_PX pixels either side of it: the result is
``skimage.draw.polygon``'s, pixel for pixel (tests/test_polygons.py holds
it to that on thousands of random polygons, self-intersecting ones
included), at a cost that grows with the outline, not the area.

Coordinates are pixels, x to the right and y down, pixel ``(row, col)``
centred on ``(y, x) = (row, col)``.
"""

import cv2
import numpy as np
import skimage.measure

# OpenCV's fill errs only on pixels its outline raster touches, within one
# pixel of an edge; the exact test covers twice that.
BAND_PX = 2
# OpenCV takes vertices in fixed point with this many fractional bits.
SUBPIXEL_BITS = 8


def clip_polygon(xs, ys, x_min, y_min, x_max, y_max):
    """The part of a polygon inside the box x_min..x_max, y_min..y_max
    (Sutherland-Hodgman), as (xs, ys) float arrays; empty when none is.

    A rasteriser's cost grows with the outline's length, so a vertex far
    outside the image (a typo, 1e7) costs seconds and hundreds of MB unless
    the polygon is clipped to a box around the image first; the pixels
    inside the box are the same. A concave polygon may come back with
    edges running along the box's border, which cover no pixel.
    """
    points = np.stack([np.asarray(xs, np.float64).reshape(-1),
                       np.asarray(ys, np.float64).reshape(-1)], axis=1)
    for axis, bound, upper in ((0, x_min, False), (0, x_max, True),
                               (1, y_min, False), (1, y_max, True)):
        if not len(points):
            break
        inside = points[:, axis] <= bound if upper \
            else points[:, axis] >= bound
        kept = []
        for index, point in enumerate(points):
            after = (index + 1) % len(points)
            if inside[index]:
                kept.append(point)
            if inside[index] != inside[after]:  # the edge crosses the bound
                step = points[after] - point
                kept.append(point + step * (bound - point[axis])
                            / step[axis])
        points = np.array(kept).reshape(-1, 2)
    return points[:, 0], points[:, 1]


def fill_polygon(xs, ys, shape):
    """Bool mask [height, width] of the pixels skimage.draw.polygon(ys, xs,
    shape) returns: centres inside the polygon or on its outline, clipped
    to the image. xs, ys: float vertex coordinates in pixels (at least 3,
    finite; the caller checks). shape: (height, width, ...)."""
    xs = np.asarray(xs, np.float64)
    ys = np.asarray(ys, np.float64)
    height, width = int(shape[0]), int(shape[1])
    mask = np.zeros((height, width), dtype=bool)
    # The pixels skimage.draw.polygon visits: the box around the vertices.
    top, left = max(0, int(np.floor(ys.min()))), max(0, int(np.floor(
        xs.min())))
    bottom = min(height, int(np.ceil(ys.max())) + 1)
    right = min(width, int(np.ceil(xs.max())) + 1)
    if top >= bottom or left >= right:
        return mask
    margin = BAND_PX + 1  # clipped edges stay outside the band
    clipped = clip_polygon(xs, ys, left - margin, top - margin,
                           right - 1 + margin, bottom - 1 + margin)
    if len(clipped[0]) < 3:
        return mask
    mask[top:bottom, left:right] = _fill_window(
        clipped, (xs, ys), top, left, (bottom - top, right - left))
    return mask


def _fill_window(clipped, original, top, left, size):
    """The window [size] at (top, left) of the mask: OpenCV's fill of the
    clipped polygon, with the pixels near its outline decided by
    scikit-image's test on the original polygon."""
    scale = 1 << SUBPIXEL_BITS
    points = np.stack([np.rint((clipped[0] - left) * scale),
                       np.rint((clipped[1] - top) * scale)],
                      axis=1).astype(np.int32)
    fill = np.zeros(size, np.uint8)
    cv2.fillPoly(fill, [points], 1, lineType=cv2.LINE_8,
                 shift=SUBPIXEL_BITS)
    band = np.zeros(size, np.uint8)
    cv2.polylines(band, [points], True, 1, thickness=2 * BAND_PX + 1,
                  lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    window = fill.astype(bool)
    near = np.argwhere(band)  # [n, (row, col)] in the window
    if len(near):
        # (x, y) order, as skimage.draw.polygon calls the test: the
        # crossing rule is not symmetric in x and y on the outline.
        centres = (near[:, ::-1] + [left, top]).astype(np.float64)
        window[near[:, 0], near[:, 1]] = skimage.measure.points_in_poly(
            centres, np.stack(original, axis=1))
    return window
