"""Anchor boxes in pixels, for one feature map or a whole pyramid."""

import numpy as np


def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride):
    """Anchor boxes for one feature map.

    scales: 1D array of anchor sizes in pixels, e.g. [32, 64, 128].
    ratios: 1D array of width/height ratios, e.g. [0.5, 1, 2].
    shape: [height, width] of the feature map.
    feature_stride: stride of the feature map relative to the image.
    anchor_stride: place anchors every anchor_stride feature-map cells.
    Returns: [num_cells * len(scales) * len(ratios), (y1, x1, y2, x2)] pixel
    anchors, ordered by cell row, then column, then ratio, then scale (the
    order of the RPN outputs). Anchor centres sit at cell * feature_stride.
    """
    # Every (ratio, scale) combination, ratio-major.
    scales, ratios = np.meshgrid(np.array(scales), np.array(ratios))
    scales = scales.flatten()
    ratios = ratios.flatten()
    heights = scales / np.sqrt(ratios)  # [A]
    widths = scales * np.sqrt(ratios)

    shifts_y = np.arange(0, shape[0], anchor_stride) * feature_stride
    shifts_x = np.arange(0, shape[1], anchor_stride) * feature_stride
    centers_x, centers_y = np.meshgrid(shifts_x, shifts_y)  # [rows, cols]
    centers = np.stack([centers_y.ravel(), centers_x.ravel()], axis=1)
    sizes = np.stack([heights, widths], axis=1)  # [A, 2]

    # Pair every cell with every anchor shape, cell-major: [cells * A, 2]
    num_cells, num_shapes = len(centers), len(sizes)
    centers = np.repeat(centers, num_shapes, axis=0)
    sizes = np.tile(sizes, (num_cells, 1))
    return np.concatenate([centers - 0.5 * sizes, centers + 0.5 * sizes],
                          axis=1)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides,
                             anchor_stride):
    """Anchors for every level of a feature pyramid.

    scales: one anchor size per level, e.g. (32, 64, 128, 256, 512).
    ratios, anchor_stride: as in generate_anchors.
    feature_shapes: [levels, (height, width)] of the feature maps.
    feature_strides: one stride per level.
    Returns: [N, (y1, x1, y2, x2)] pixel anchors, level by level, in the
    order of the scales.
    """
    anchors = [generate_anchors(scales[i], ratios, feature_shapes[i],
                                feature_strides[i], anchor_stride)
               for i in range(len(scales))]
    return np.concatenate(anchors, axis=0)
