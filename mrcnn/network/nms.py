"""Non-max suppression with the ordinary op, the same in every runtime.

The inference graph suppresses proposals with ``tf.image.non_max_suppression``
and detections with ``tf.image.non_max_suppression_overlaps`` (one pass
over all classes with an IoU matrix that is zero across classes), which
onnxruntime and LiteRT do not have. The functions here give the same
selections with the ordinary ``NonMaxSuppressionV4`` (ONNX
``NonMaxSuppression``, the TFLite built-in ``NON_MAX_SUPPRESSION_V4``), one
call a class. The proposal and detection layers take them with their
``builtin_ops`` flag (``mrcnn.inference.export_portable.portable_graph``
sets it while an export is traced); tests/test_builtin_ops.py holds them
equal to the graph's NMS.

Two things are kept out of the runtimes' hands, where they differ:

* equal scores: TensorFlow visits the lower index first; TFLite's NMS
  sorts with a partial sort that leaves ties in any order (an untrained or
  saturated model scores many boxes exactly alike). The op gets distinct
  scores in TensorFlow's visiting order (``visiting_order_scores``);
* boxes of zero area: their IoU is 0, so TensorFlow selects each once and
  they suppress nothing; TFLite's kernel selects such a box again and
  again (its IoU with itself is 0 too). They are left out of the op and
  added to its selection (``_selected``): the same boxes, as greedy NMS
  would order them.
"""

import tensorflow as tf


def padded_nms(boxes, scores, max_output_size, iou_threshold,
               score_threshold=float("-inf")):
    """Greedy NMS with a fixed-size result (NonMaxSuppressionV4).

    boxes: [N, (y1, x1, y2, x2)]; scores: [N]. Boxes scoring at most
    score_threshold are never selected.
    Returns (indices [max_output_size] int32 into boxes, best score first,
    padded with zeros; count: int32 scalar, how many are real).
    """
    indices, count = tf.raw_ops.NonMaxSuppressionV4(
        boxes=boxes, scores=scores,
        max_output_size=tf.constant(max_output_size, tf.int32),
        iou_threshold=tf.constant(iou_threshold, tf.float32),
        score_threshold=tf.constant(score_threshold, tf.float32),
        pad_to_max_output_size=True)
    return indices, count


def visiting_order_scores(scores):
    """Distinct positive float32 scores in the order greedy NMS visits the
    boxes: higher score first, the lower index first among equal scores.

    scores: [N] with N static. Returns [N]: N - rank, rank 0 the first
    box visited. O(N^2) comparisons (a million for 1000 ROIs).
    """
    count = scores.shape[0]
    index = tf.range(count)
    before = ((scores[None, :] > scores[:, None])
              | ((scores[None, :] == scores[:, None])
                 & (index[None, :] < index[:, None])))
    rank = tf.reduce_sum(tf.cast(before, tf.int32), axis=1)
    return tf.cast(count - rank, tf.float32)


def _zero_area(boxes):
    """[N] bool: the boxes TensorFlow's NMS gives an IoU of 0 with anything
    (area computed as its kernel does, corners in either order)."""
    y1, x1, y2, x2 = tf.unstack(boxes, axis=1)
    area = ((tf.maximum(y1, y2) - tf.minimum(y1, y2))
            * (tf.maximum(x1, x2) - tf.minimum(x1, x2)))
    return area <= 0.0


def _selected(boxes, order, candidates, max_output_size, iou_threshold):
    """[N] bool: the candidates greedy NMS selects, visiting them by
    `order` (distinct positive scores), at least the first max_output_size
    of them in that order (zero-area candidates all)."""
    num_boxes = tf.shape(boxes)[0]
    zero_area = _zero_area(boxes)
    scores = tf.where(candidates & ~zero_area, order, -1.0)
    indices, count = padded_nms(boxes, scores, max_output_size,
                                iou_threshold, score_threshold=-0.5)
    # Padding slots land in a spare last row.
    indices = tf.where(tf.range(max_output_size) < count, indices,
                       num_boxes)
    hits = tf.scatter_nd(indices[:, None],
                         tf.ones([max_output_size], tf.int32),
                         num_boxes[None] + 1)
    return (hits[:num_boxes] > 0) | (candidates & zero_area)


def _first_in_order(selected, order, k):
    """(indices [k] of the selected boxes by descending order, count of
    the real ones: int32 scalar)."""
    best = tf.math.top_k(tf.where(selected, order, -1.0), k)
    count = tf.minimum(tf.reduce_sum(tf.cast(selected, tf.int32)), k)
    return best.indices, count


def sorted_nms(boxes, max_output_size, iou_threshold):
    """tf.image.non_max_suppression of boxes already sorted by descending
    score (ties by lower index, as top_k sorts them).

    boxes: [N, (y1, x1, y2, x2)]. Returns (indices [min(max_output_size,
    N)] int32, count: int32 scalar, how many of them are real).
    """
    num_boxes = tf.shape(boxes)[0]
    order = tf.cast(num_boxes - tf.range(num_boxes), tf.float32)
    selected = _selected(boxes, order, tf.ones([num_boxes], tf.bool),
                         max_output_size, iou_threshold)
    return _first_in_order(selected, order,
                           tf.minimum(max_output_size, num_boxes))


def per_class_nms(boxes, class_ids, scores, candidates, num_classes,
                  max_instances, nms_threshold):
    """Greedy NMS within each class, then the best max_instances overall:
    detection._per_class_nms with one ordinary NMS a class.

    boxes: [N, (y1, x1, y2, x2)] normalized; class_ids: [N] int32;
    scores: [N]; candidates: [N] bool, the boxes that may be selected.
    N must be static. num_classes: python int (class 0, the background,
    is never selected).
    Returns (indices [k] int32 into boxes, best score first, k =
    min(max_instances, N); count: int32 scalar, how many of them are
    real). Ties in score go to the lower index, as in the single-pass NMS
    over all classes.
    """
    num_boxes = boxes.shape[0]
    if num_boxes is None:
        raise ValueError("per_class_nms needs a static number of boxes")
    order = visiting_order_scores(scores)
    selected = tf.zeros([num_boxes], tf.bool)
    for class_id in range(1, num_classes):
        selected |= _selected(
            boxes, order, candidates & tf.equal(class_ids, class_id),
            max_instances, nms_threshold)
    return _first_in_order(selected, order, min(max_instances, num_boxes))
