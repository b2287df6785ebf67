"""Numpy box helpers: boxes of masks, IoU, NMS, the box coder, normalization.

Boxes are ``(y1, x1, y2, x2)``. Pixel boxes are exclusive at the end: ``y2``
/ ``x2`` are one past the last row / column of the object. Pairs of boxes
with an empty union get IoU 0 (matterport gave NaN there), matching
``mrcnn.network.box_ops.overlaps_graph``, the TensorFlow twin of these helpers.
"""

import math

import numpy as np


def extract_bboxes(mask):
    """Computes the bounding box of each instance mask.

    mask: [height, width, num_instances]. Pixels are bool (or 0/1).
    Returns: [num_instances, (y1, x1, y2, x2)] int32 pixel boxes with y2, x2
        one past the last pixel. An empty mask gets the box (0, 0, 0, 0).
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    if mask.ndim != 3:
        raise ValueError("extract_bboxes expects a [height, width, "
                         "instances] mask, got shape {}".format(mask.shape))
    height, width = mask.shape[:2]
    rows = _any_along_width(mask)  # [height, N]: instance present in row y
    cols = np.any(mask, axis=0)  # [width, N]
    present = np.any(rows, axis=0)  # [N]
    y1 = np.argmax(rows, axis=0)
    y2 = height - np.argmax(rows[::-1], axis=0)
    x1 = np.argmax(cols, axis=0)
    x2 = width - np.argmax(cols[::-1], axis=0)
    boxes = np.stack([y1, x1, y2, x2], axis=1)
    boxes[~present] = 0
    return boxes.astype(np.int32)


def _any_along_width(mask, block=32):
    """np.any(mask, axis=1) of [H, W, N] masks, [H, N], several times
    faster: numpy reduces the middle axis N values at a time, but the first
    axis whole rows at a time, so each block of rows is turned to put W
    first (a copy that stays in the cache) and reduced along it."""
    out = np.empty((mask.shape[0], mask.shape[2]), dtype=bool)
    for start in range(0, mask.shape[0], block):
        rows = mask[start:start + block].transpose(1, 0, 2)
        out[start:start + block] = np.ascontiguousarray(rows).any(axis=0)
    return out


def _safe_divide(numerator, denominator):
    """numerator / denominator, with 0 wherever the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def compute_iou(box, boxes, box_area, boxes_area):
    """IoU of one box against each box of an array.

    box: [y1, x1, y2, x2]
    boxes: [N, (y1, x1, y2, x2)]
    box_area: float, the area of ``box``.
    boxes_area: [N], the areas of ``boxes``.
    Returns: [N] IoU values. Passing the areas in avoids recomputing them
    when the function is called in a loop (as non_max_suppression does).
    """
    boxes = np.asarray(boxes)
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + np.asarray(boxes_area) - intersection
    return _safe_divide(intersection, union)


def _box_areas(boxes):
    """[N, (y1, x1, y2, x2)] -> [N] areas (negative sizes count as 0)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return (np.maximum(boxes[:, 2] - boxes[:, 0], 0)
            * np.maximum(boxes[:, 3] - boxes[:, 1], 0))


def compute_overlaps(boxes1, boxes2):
    """IoU of every box of boxes1 against every box of boxes2.

    boxes1: [N1, (y1, x1, y2, x2)], boxes2: [N2, (y1, x1, y2, x2)].
    Returns: [N1, N2] IoU matrix.
    """
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    b1 = boxes1[:, None, :]  # [N1, 1, 4]
    b2 = boxes2[None, :, :]  # [1, N2, 4]
    height = np.minimum(b1[..., 2], b2[..., 2]) - np.maximum(b1[..., 0],
                                                             b2[..., 0])
    width = np.minimum(b1[..., 3], b2[..., 3]) - np.maximum(b1[..., 1],
                                                            b2[..., 1])
    intersection = np.maximum(height, 0) * np.maximum(width, 0)
    union = (_box_areas(boxes1)[:, None] + _box_areas(boxes2)[None, :]
             - intersection)
    return _safe_divide(intersection, union)


def non_max_suppression(boxes, scores, threshold):
    """Greedy non-maximum suppression.

    boxes: [N, (y1, x1, y2, x2)]. Note that (y2, x2) lies outside the box.
    scores: [N] box scores.
    threshold: float. A box is dropped when its IoU with a higher-scoring
        kept box is above this.
    Returns: int32 indices of the kept boxes, best score first.
    """
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    if boxes.shape[0] == 0:
        return np.zeros([0], dtype=np.int32)
    if boxes.dtype.kind != "f":
        boxes = boxes.astype(np.float32)
    areas = _box_areas(boxes)
    order = np.argsort(scores, kind="stable")[::-1]
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(best)
        iou = compute_iou(boxes[best], boxes[rest], areas[best], areas[rest])
        order = rest[iou <= threshold]
    return np.array(keep, dtype=np.int32)


############################################################
#  The box coder: boxes <-> (dy, dx, log(dh), log(dw)) deltas
############################################################

# torchvision's BoxCoder clamp (bbox_xform_clip): log(dh) and log(dw) at
# most log(1000 / 16), so a box grows at most 62.5 times and exp never
# overflows on the wild deltas of a network early in training.
DELTA_CLAMP = math.log(1000.0 / 16)


def centers_and_sizes(boxes):
    """boxes: [..., (y1, x1, y2, x2)] -> (center_y, center_x, height,
    width), each [...]; (y2, x2) lies outside the box. Slicing and
    arithmetic only: numpy arrays and TensorFlow tensors alike (the graph's
    coder in mrcnn.network.box_ops uses it too)."""
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    return (boxes[..., 0] + 0.5 * height, boxes[..., 1] + 0.5 * width,
            height, width)


def encode_boxes(boxes, gt_boxes, std_dev=None):
    """The deltas that turn each box into its ground-truth box.

    The numpy twin of ``mrcnn.network.box_ops.encode_boxes_graph``
    (``tests/test_box_coder.py`` holds them equal); the inverse of
    ``decode_boxes``. Boxes may be pixels or normalized: the deltas are
    relative to the box's own size, so they do not depend on the unit.

    boxes, gt_boxes: [..., (y1, x1, y2, x2)], same unit.
    std_dev: None, or 4 values (Config.RPN_BBOX_STD_DEV / BBOX_STD_DEV)
        the deltas are divided by, so that the network's targets are of
        order 1.
    Returns: [..., (dy, dx, log(dh), log(dw))] float32, divided by std_dev.
    """
    center_y, center_x, height, width = centers_and_sizes(
        np.asarray(boxes).astype(np.float32))
    gt_center_y, gt_center_x, gt_height, gt_width = centers_and_sizes(
        np.asarray(gt_boxes).astype(np.float32))
    deltas = np.stack([(gt_center_y - center_y) / height,
                       (gt_center_x - center_x) / width,
                       np.log(gt_height / height),
                       np.log(gt_width / width)], axis=-1).astype(np.float32)
    if std_dev is not None:
        deltas = deltas / np.asarray(std_dev, dtype=np.float32)
    return deltas


def decode_boxes(boxes, deltas, std_dev=None, clamp=None):
    """Boxes moved and resized by deltas: the inverse of ``encode_boxes``.

    The numpy twin of ``mrcnn.network.box_ops.decode_boxes_graph``.

    boxes: [..., (y1, x1, y2, x2)] pixels or normalized; (y2, x2) lies
        outside the box.
    deltas: [..., (dy, dx, log(dh), log(dw))], divided by std_dev when
        std_dev is given (the network's raw output).
    std_dev: None, or 4 values the deltas are first multiplied by.
    clamp: None (the default: matterport's numbers, no clamp) or the
        largest log(dh), log(dw) used, for example DELTA_CLAMP; applied
        after std_dev, before exp.
    Returns: [..., (y1, x1, y2, x2)] float32, in the unit of boxes.
    """
    center_y, center_x, height, width = centers_and_sizes(
        np.asarray(boxes).astype(np.float32))
    # Not cast: float64 deltas are applied in float64 as matterport did.
    deltas = np.asarray(deltas)
    if std_dev is not None:
        deltas = deltas * np.asarray(std_dev, dtype=np.float32)
    log_height, log_width = deltas[..., 2], deltas[..., 3]
    if clamp is not None:
        log_height = np.minimum(log_height, clamp)
        log_width = np.minimum(log_width, clamp)
    center_y = center_y + deltas[..., 0] * height
    center_x = center_x + deltas[..., 1] * width
    height = height * np.exp(log_height)
    width = width * np.exp(log_width)
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return np.stack([y1, x1, y1 + height, x1 + width], axis=-1).astype(
        np.float32)


def apply_box_deltas(boxes, deltas):
    """Applies refinement deltas to boxes (matterport's name and signature:
    ``decode_boxes`` without std_dev or clamp).

    boxes: [N, (y1, x1, y2, x2)]. Note that (y2, x2) lies outside the box.
    deltas: [N, (dy, dx, log(dh), log(dw))]
    Returns: [N, (y1, x1, y2, x2)] float32.
    """
    return decode_boxes(boxes, deltas)


def box_refinement(box, gt_box):
    """The deltas that turn each box into its ground-truth box
    (matterport's name and signature: ``encode_boxes`` without std_dev).

    box, gt_box: [N, (y1, x1, y2, x2)]. (y2, x2) lies outside the box.
    Returns: [N, (dy, dx, log(dh), log(dw))] float32, the inverse of
    apply_box_deltas.
    """
    return encode_boxes(box, gt_box)


def norm_boxes(boxes, shape):
    """Pixel boxes to normalized coordinates.

    boxes: [N, (y1, x1, y2, x2)] in pixels.
    shape: (height, width) of the image.
    Returns: [N, (y1, x1, y2, x2)] float32 normalized. In pixel coordinates
    (y2, x2) is outside the box; in normalized coordinates it is inside, so
    (y2, x2) are shifted by one pixel.
    """
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    shift = np.array([0, 0, 1, 1])
    return np.divide((np.asarray(boxes) - shift), scale).astype(np.float32)


def denorm_boxes(boxes, shape):
    """Normalized boxes to int32 pixel boxes; the inverse of norm_boxes."""
    h, w = shape[:2]
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    shift = np.array([0, 0, 1, 1])
    return np.around(np.multiply(boxes, scale) + shift).astype(np.int32)


def trim_zeros(x):
    """Drops the all-zero rows of a 2D array (the padding of box tensors).

    x: [rows, columns].
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError("trim_zeros expects a 2D array, got shape {}"
                         .format(x.shape))
    return x[~np.all(x == 0, axis=1)]
