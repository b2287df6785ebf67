"""DetectionLayer: final boxes, classes and scores at inference time.

Same semantics as matterport's ``refine_detections_graph`` /
``DetectionLayer``: the best class of each ROI, its refined box clipped to
the image window, background and low-confidence ROIs dropped, per-class
non-max suppression, and the top ``max_instances`` detections by score.
"""

import keras
import tensorflow as tf

from mrcnn.network import nms
from mrcnn.network.box_ops import (clip_boxes_graph, decode_boxes_graph,
                                   norm_boxes_graph, overlaps_graph,
                                   parse_image_meta_graph)


def refine_detections(rois, probs, deltas, window, max_instances,
                      min_confidence, nms_threshold, bbox_std_dev,
                      delta_clamp=None, builtin_ops=False):
    """Detections of one image.

    rois: [N, (y1, x1, y2, x2)] normalized; probs: [N, num_classes];
    deltas: [N, num_classes, (dy, dx, log(dh), log(dw))] before multiplying
    by bbox_std_dev; window: [4] normalized image area (without the
    padding added when molding); delta_clamp: None or the largest
    log(dh), log(dw) decoded (see decode_boxes_graph). builtin_ops: the
    same detections with the ordinary NMS op, one a class (see
    mrcnn.network.nms; N must be static).
    Returns: [max_instances, (y1, x1, y2, x2, class_id, score)] float32,
    normalized boxes, best score first, zero-padded.
    """
    class_ids = tf.argmax(probs, axis=1, output_type=tf.int32)
    class_scores = tf.gather(probs, class_ids, batch_dims=1)
    class_deltas = tf.gather(deltas, class_ids, batch_dims=1)
    boxes = decode_boxes_graph(rois, class_deltas, bbox_std_dev,
                               delta_clamp)
    boxes = clip_boxes_graph(boxes, window)
    if builtin_ops:
        return _detections_builtin(boxes, class_ids, class_scores,
                                   probs.shape[-1], max_instances,
                                   min_confidence, nms_threshold)

    # Candidates: not background and confident enough. tf.where keeps
    # them in ROI order, which breaks score ties by ROI index as
    # matterport's final top_k does.
    keep = tf.where((class_ids > 0) & (class_scores >= min_confidence))[:, 0]
    kept_ids = tf.gather(class_ids, keep)
    kept_scores = tf.gather(class_scores, keep)
    kept_boxes = tf.gather(boxes, keep)

    selected = _per_class_nms(kept_boxes, kept_ids, kept_scores,
                              max_instances, nms_threshold)
    detections = tf.concat([
        tf.gather(kept_boxes, selected),
        tf.cast(tf.gather(kept_ids, selected), tf.float32)[:, None],
        tf.gather(kept_scores, selected)[:, None],
    ], axis=1)
    padding = max_instances - tf.shape(detections)[0]
    return tf.pad(detections, [(0, padding), (0, 0)])


def _detections_builtin(boxes, class_ids, class_scores, num_classes,
                        max_instances, min_confidence, nms_threshold):
    """refine_detections' selection with nms.per_class_nms: candidates are
    masked instead of gathered, so that every shape stays static."""
    candidates = (class_ids > 0) & (class_scores >= min_confidence)
    selected, count = nms.per_class_nms(
        boxes, class_ids, class_scores, candidates, num_classes,
        max_instances, nms_threshold)
    detections = tf.concat([
        tf.gather(boxes, selected),
        tf.cast(tf.gather(class_ids, selected), tf.float32)[:, None],
        tf.gather(class_scores, selected)[:, None],
    ], axis=1)
    real = tf.range(tf.shape(selected)[0]) < count
    detections = tf.where(real[:, None], detections, 0.0)
    return tf.pad(detections,
                  [(0, max_instances - selected.shape[0]), (0, 0)])


def _per_class_nms(boxes, class_ids, scores, max_instances, nms_threshold):
    """Greedy NMS within each class; returns up to max_instances indices
    into boxes, highest score first.

    One greedy pass over all boxes where boxes of different classes never
    overlap is the same as NMS per class followed by keeping the best
    max_instances overall: every box among the overall best max_instances
    is also among its own class's best max_instances.
    """
    same_class = tf.equal(class_ids[:, None], class_ids[None, :])
    overlaps = tf.where(same_class, overlaps_graph(boxes, boxes), 0.0)
    return tf.image.non_max_suppression_overlaps(
        overlaps, scores, max_instances, overlap_threshold=nms_threshold,
        name="detection_non_max_suppression")


def refine_detections_graph(rois, probs, deltas, window, config):
    """matterport's signature of refine_detections, from a Config.

    rois: [N, (y1, x1, y2, x2)] normalized; probs: [N, num_classes];
    deltas: [N, num_classes, (dy, dx, log(dh), log(dw))]; window: [4]
    normalized. Uses DETECTION_MAX_INSTANCES, DETECTION_MIN_CONFIDENCE,
    DETECTION_NMS_THRESHOLD and BBOX_STD_DEV.
    Returns: [DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id, score)].
    """
    return refine_detections(
        tf.cast(rois, tf.float32), tf.cast(probs, tf.float32),
        tf.cast(deltas, tf.float32), tf.cast(window, tf.float32),
        config.DETECTION_MAX_INSTANCES, config.DETECTION_MIN_CONFIDENCE,
        config.DETECTION_NMS_THRESHOLD,
        tuple(float(v) for v in config.BBOX_STD_DEV))


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionLayer(keras.layers.Layer):
    """Turns classified, refined ROIs into the final detections.

    Inputs (call's list):
        rois: [batch, num_rois, (y1, x1, y2, x2)] normalized.
        mrcnn_class: [batch, num_rois, num_classes] class probabilities.
        mrcnn_bbox: [batch, num_rois, num_classes, (dy, dx, log(dh), log(dw))]
            deltas, before multiplying by bbox_std_dev.
        image_meta: [batch, meta_length] (see mrcnn.data.compose_image_meta).

    Returns: [batch, max_instances, (y1, x1, y2, x2, class_id, score)] with
    normalized boxes, best score first, zero-padded.

    builtin_ops: suppress with the ordinary NMS op, one a class (the same
    detections; for onnxruntime and LiteRT, see mrcnn.network.nms); off by
    default.
    """

    def __init__(self, max_instances=100, min_confidence=0.7,
                 nms_threshold=0.3, bbox_std_dev=(0.1, 0.1, 0.2, 0.2),
                 delta_clamp=None, builtin_ops=False, **kwargs):
        # Box math and NMS stay float32 even under a mixed precision policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.max_instances = int(max_instances)
        self.min_confidence = float(min_confidence)
        self.nms_threshold = float(nms_threshold)
        self.bbox_std_dev = tuple(float(v) for v in bbox_std_dev)
        self.delta_clamp = None if delta_clamp is None else float(delta_clamp)
        # NonMaxSuppressionWithOverlaps has no XLA kernel: Keras' predict
        # must not compile this layer.
        self.supports_jit = False
        self.builtin_ops = bool(builtin_ops)
        if len(self.bbox_std_dev) != 4:
            raise ValueError(
                "DetectionLayer: bbox_std_dev needs 4 values, got {}"
                .format(bbox_std_dev))

    def get_config(self):
        config = super().get_config()
        config.update({
            "max_instances": self.max_instances,
            "min_confidence": self.min_confidence,
            "nms_threshold": self.nms_threshold,
            "bbox_std_dev": list(self.bbox_std_dev),
            "delta_clamp": self.delta_clamp,
            "builtin_ops": self.builtin_ops,
        })
        return config

    def call(self, inputs):
        rois, mrcnn_class, mrcnn_bbox, image_meta = [
            tf.cast(t, tf.float32) for t in inputs]
        meta = parse_image_meta_graph(image_meta)
        # All images of a batch are molded to the same shape.
        image_shape = meta["image_shape"][0]
        windows = norm_boxes_graph(meta["window"], image_shape[:2])
        return tf.map_fn(
            lambda args: refine_detections(
                *args, self.max_instances, self.min_confidence,
                self.nms_threshold, self.bbox_std_dev, self.delta_clamp,
                self.builtin_ops),
            (rois, mrcnn_class, mrcnn_bbox, windows),
            fn_output_signature=tf.TensorSpec(
                [self.max_instances, 6], tf.float32))

    def compute_output_shape(self, input_shape):
        batch = input_shape[0][0]
        return (batch, self.max_instances, 6)
