"""Non-max suppression with the ordinary op, for every runtime.

The inference graph suppresses detections with
``tf.image.non_max_suppression_overlaps`` (one pass over all classes with
an IoU matrix that is zero across classes), which onnxruntime and LiteRT
do not have. The functions here give the same selections with the
ordinary ``NonMaxSuppressionV4`` (ONNX ``NonMaxSuppression``, the TFLite
built-in ``NON_MAX_SUPPRESSION_V4``), one call a class. The proposal and
detection layers take them with their ``builtin_ops`` flag
(``mrcnn.inference.export_graph.builtin_ops`` sets it while an export is
traced); tests/test_builtin_ops.py holds them equal to the graph's NMS.
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


def per_class_nms(boxes, class_ids, scores, candidates, num_classes,
                  max_instances, nms_threshold):
    """Greedy NMS within each class, then the best max_instances overall:
    detection._per_class_nms with one ordinary NMS a class.

    boxes: [N, (y1, x1, y2, x2)] normalized; class_ids: [N] int32;
    scores: [N] in [0, 1]; candidates: [N] bool, the boxes that may be
    selected. num_classes: python int (class 0, the background, is never
    selected).
    Returns (indices [k] int32 into boxes, best score first, k =
    min(max_instances, N) with N static; count: int32 scalar, how many of
    them are real). Ties in score go to the lower index, as in the
    single-pass NMS over all classes.
    """
    num_boxes = boxes.shape[0]
    if num_boxes is None:
        raise ValueError("per_class_nms needs a static number of boxes")
    selected = tf.zeros([num_boxes + 1], tf.int32)
    slot = tf.range(max_instances)
    for class_id in range(1, num_classes):
        # Other classes' and non-candidate boxes score -1: never selected.
        class_scores = tf.where(candidates & tf.equal(class_ids, class_id),
                                scores, -1.0)
        indices, count = padded_nms(boxes, class_scores, max_instances,
                                    nms_threshold, score_threshold=-0.5)
        # Padding slots land in the spare last row.
        indices = tf.where(slot < count, indices, num_boxes)
        selected += tf.scatter_nd(indices[:, None],
                                  tf.ones([max_instances], tf.int32),
                                  [num_boxes + 1])
    selected = selected[:num_boxes] > 0
    k = min(max_instances, num_boxes)
    # top_k keeps the lower index first among equal values.
    best = tf.math.top_k(tf.where(selected, scores, -1.0), k)
    count = tf.minimum(tf.reduce_sum(tf.cast(selected, tf.int32)), k)
    return best.indices, count
