"""Box and image-meta math on TensorFlow tensors.

These are the graph twins of the numpy helpers in ``mrcnn.structures.boxes``
(``encode_boxes`` / ``decode_boxes``, the one box coder, and matterport's
``apply_box_deltas``, ``box_refinement``, ``compute_overlaps``,
``norm_boxes``, ``denorm_boxes``, ``trim_zeros``); ``tests/test_box_ops.py``
and ``tests/test_box_coder.py`` hold each pair equal. Every stage that turns
boxes into deltas or back (RPN proposals, detection targets, detections)
calls ``encode_boxes_graph`` / ``decode_boxes_graph`` rather than writing
the math again. Boxes are ``(y1, x1, y2, x2)``. Functions are plain
TensorFlow and are meant to be called inside Keras layers.
"""

import tensorflow as tf

from mrcnn.structures.boxes import centers_and_sizes


############################################################
#  The box coder: boxes <-> (dy, dx, log(dh), log(dw)) deltas
############################################################

def encode_boxes_graph(boxes, gt_boxes, std_dev=None):
    """The deltas that turn each box into its ground-truth box.

    The one encoder of the graph (detection targets); the twin of
    ``mrcnn.structures.boxes.encode_boxes``, the inverse of
    ``decode_boxes_graph``. Pixels or normalized alike: the deltas are
    relative to the box's own size.

    boxes, gt_boxes: [..., (y1, x1, y2, x2)], same unit; cast to float32.
    std_dev: None, or 4 values (Config.BBOX_STD_DEV) the deltas are
        divided by.
    Returns: [..., (dy, dx, log(dh), log(dw))] float32, divided by std_dev.
    """
    center_y, center_x, height, width = centers_and_sizes(
        tf.cast(boxes, tf.float32))
    gt_center_y, gt_center_x, gt_height, gt_width = centers_and_sizes(
        tf.cast(gt_boxes, tf.float32))
    deltas = tf.stack([(gt_center_y - center_y) / height,
                       (gt_center_x - center_x) / width,
                       tf.math.log(gt_height / height),
                       tf.math.log(gt_width / width)], axis=-1)
    if std_dev is not None:
        deltas = deltas / tf.constant(std_dev, tf.float32)
    return deltas


def decode_boxes_graph(boxes, deltas, std_dev=None, clamp=None):
    """Boxes moved and resized by deltas: the inverse of
    ``encode_boxes_graph``.

    The one decoder of the graph (RPN proposals, detections); the twin of
    ``mrcnn.structures.boxes.decode_boxes``.

    boxes: [..., (y1, x1, y2, x2)] pixels or normalized.
    deltas: [..., (dy, dx, log(dh), log(dw))], same dtype as boxes; the
        network's raw output (divided by std_dev) when std_dev is given.
    std_dev: None, or 4 values (Config.RPN_BBOX_STD_DEV / BBOX_STD_DEV)
        the deltas are first multiplied by.
    clamp: None (the default: matterport's numbers, no clamp) or the
        largest log(dh), log(dw) used, for example
        ``mrcnn.structures.boxes.DELTA_CLAMP``; applied after std_dev,
        before exp.
    Returns: [..., (y1, x1, y2, x2)], same dtype as boxes (not cast: the
    layers cast to float32 first, so mixed precision keeps float32 boxes).
    """
    boxes = tf.convert_to_tensor(boxes)
    deltas = tf.convert_to_tensor(deltas)
    if std_dev is not None:
        deltas = deltas * tf.constant(std_dev, deltas.dtype)
    center_y, center_x, height, width = centers_and_sizes(boxes)
    log_height, log_width = deltas[..., 2], deltas[..., 3]
    if clamp is not None:
        log_height = tf.minimum(log_height, clamp)
        log_width = tf.minimum(log_width, clamp)
    center_y = center_y + deltas[..., 0] * height
    center_x = center_x + deltas[..., 1] * width
    height = height * tf.exp(log_height)
    width = width * tf.exp(log_width)
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return tf.stack([y1, x1, y1 + height, x1 + width], axis=-1,
                    name="apply_box_deltas_out")


def apply_box_deltas_graph(boxes, deltas):
    """Applies deltas to boxes (matterport's name and signature:
    ``decode_boxes_graph`` without std_dev or clamp).

    boxes: [N, (y1, x1, y2, x2)] boxes to update.
    deltas: [N, (dy, dx, log(dh), log(dw))] refinements to apply.
    Returns: [N, (y1, x1, y2, x2)], same dtype as boxes.
    """
    return decode_boxes_graph(boxes, deltas)


def box_refinement_graph(box, gt_box):
    """Deltas that turn box into gt_box (matterport's name and signature:
    ``encode_boxes_graph`` without std_dev).

    box, gt_box: [N, (y1, x1, y2, x2)]
    Returns: [N, (dy, dx, log(dh), log(dw))] float32.
    """
    return encode_boxes_graph(box, gt_box)


############################################################
#  Other box and image-meta ops
############################################################

def clip_boxes_graph(boxes, window):
    """Clips boxes to a window.

    boxes: [..., (y1, x1, y2, x2)]
    window: [4] in the form (y1, x1, y2, x2)
    """
    wy1, wx1, wy2, wx2 = tf.split(window, 4)
    y1, x1, y2, x2 = tf.split(boxes, 4, axis=-1)
    y1 = tf.maximum(tf.minimum(y1, wy2), wy1)
    x1 = tf.maximum(tf.minimum(x1, wx2), wx1)
    y2 = tf.maximum(tf.minimum(y2, wy2), wy1)
    x2 = tf.maximum(tf.minimum(x2, wx2), wx1)
    return tf.concat([y1, x1, y2, x2], axis=-1, name="clipped_boxes")


def overlaps_graph(boxes1, boxes2):
    """IoU of every box in boxes1 against every box in boxes2.

    boxes1: [N1, (y1, x1, y2, x2)], boxes2: [N2, (y1, x1, y2, x2)].
    Returns: [N1, N2]. Pairs with zero union get IoU 0.
    """
    b1 = tf.expand_dims(boxes1, 1)  # [N1, 1, 4]
    b2 = tf.expand_dims(boxes2, 0)  # [1, N2, 4]
    y1 = tf.maximum(b1[..., 0], b2[..., 0])
    x1 = tf.maximum(b1[..., 1], b2[..., 1])
    y2 = tf.minimum(b1[..., 2], b2[..., 2])
    x2 = tf.minimum(b1[..., 3], b2[..., 3])
    intersection = tf.maximum(x2 - x1, 0) * tf.maximum(y2 - y1, 0)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    union = area1 + area2 - intersection
    return tf.math.divide_no_nan(intersection, union)


def trim_zeros_graph(boxes, name="trim_zeros"):
    """Removes all-zero rows (the padding of fixed-size tensors).

    boxes: [N, 4] matrix of boxes.
    Returns: (trimmed boxes [M, 4], non_zeros [N] bool mask of kept rows).
    """
    non_zeros = tf.cast(tf.reduce_sum(tf.abs(boxes), axis=1), tf.bool)
    boxes = tf.boolean_mask(boxes, non_zeros, name=name)
    return boxes, non_zeros


def batch_pack_graph(x, counts, num_rows):
    """Picks a different number of values from each row of x.

    x: [num_rows, width]; counts: [num_rows] values to take from each row.
    Returns: [sum(counts)] the first counts[i] values of each row i.
    """
    outputs = []
    for i in range(num_rows):
        outputs.append(x[i, :counts[i]])
    return tf.concat(outputs, axis=0)


def norm_boxes_graph(boxes, shape):
    """Pixel coordinates to normalized coordinates.

    boxes: [..., (y1, x1, y2, x2)] in pixels; shape: [(height, width)].
    In pixel coordinates (y2, x2) is outside the box; in normalized
    coordinates it is inside, hence the shift by one pixel.
    Returns: [..., (y1, x1, y2, x2)] normalized.
    """
    h, w = tf.split(tf.cast(shape, tf.float32), 2)
    scale = tf.concat([h, w, h, w], axis=-1) - tf.constant(1.0)
    shift = tf.constant([0., 0., 1., 1.])
    return tf.divide(tf.cast(boxes, tf.float32) - shift, scale)


def denorm_boxes_graph(boxes, shape):
    """Normalized coordinates to pixel coordinates (int32).

    boxes: [..., (y1, x1, y2, x2)] normalized; shape: [(height, width)].
    """
    h, w = tf.split(tf.cast(shape, tf.float32), 2)
    scale = tf.concat([h, w, h, w], axis=-1) - tf.constant(1.0)
    shift = tf.constant([0., 0., 1., 1.])
    return tf.cast(tf.round(tf.multiply(boxes, scale) + shift), tf.int32)


def parse_image_meta_graph(meta):
    """Splits an image_meta tensor into its components.

    meta: [batch, meta_length] as built by ``mrcnn.data.compose_image_meta``:
    image_id(1), original_image_shape(3), image_shape(3),
    window(4, pixels in the molded image), scale(1), active_class_ids(N).
    Returns a dict of float32 tensors.
    """
    return {
        "image_id": meta[:, 0],
        "original_image_shape": meta[:, 1:4],
        "image_shape": meta[:, 4:7],
        "window": meta[:, 7:11],
        "scale": meta[:, 11],
        "active_class_ids": meta[:, 12:],
    }
