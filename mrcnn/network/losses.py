"""The five Mask R-CNN training losses, and layers that compute them.

Every loss is a float32 scalar and is 0.0 (not NaN) when there is nothing
to average over, e.g. a batch without positive anchors or ROIs. Inputs are
cast to float32, so they may come from a mixed precision model.
"""

import keras
import tensorflow as tf

from mrcnn.constants import LOSS_NAMES

# Each loss layer is named as its loss by default (the training graph's
# loss outputs, the logs and Config.LOSS_WEIGHTS use the same names).
(_RPN_CLASS_LOSS, _RPN_BBOX_LOSS, _MRCNN_CLASS_LOSS, _MRCNN_BBOX_LOSS,
 _MRCNN_MASK_LOSS) = LOSS_NAMES


def _mean_or_zero(values):
    """Mean of all elements of values, 0.0 when it is empty."""
    return tf.math.divide_no_nan(tf.reduce_sum(values),
                                 tf.cast(tf.size(values), tf.float32))


def smooth_l1_loss(y_true, y_pred):
    """Element-wise smooth L1 (Huber, delta 1) loss.

    y_true, y_pred: tensors of the same shape.
    Returns: same shape, 0.5 * d^2 where |d| < 1 else |d| - 0.5.
    """
    diff = tf.abs(tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32))
    return tf.where(diff < 1.0, 0.5 * tf.square(diff), diff - 0.5)


def rpn_class_loss_graph(rpn_match, rpn_class_logits):
    """RPN anchor classifier loss (object vs background).

    rpn_match: [batch, anchors, 1] 1 positive, -1 negative, 0 neutral.
    rpn_class_logits: [batch, anchors, 2] (background, foreground) logits.
    Returns: mean cross entropy over the non-neutral anchors of the batch.
    """
    rpn_match = tf.cast(tf.squeeze(rpn_match, -1), tf.int32)
    used = tf.not_equal(rpn_match, 0)
    labels = tf.cast(tf.equal(tf.boolean_mask(rpn_match, used), 1), tf.int32)
    logits = tf.cast(tf.boolean_mask(rpn_class_logits, used), tf.float32)
    return _mean_or_zero(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits))


def rpn_bbox_loss_graph(target_bbox, rpn_match, rpn_bbox):
    """RPN box refinement loss.

    target_bbox: [batch, RPN_TRAIN_ANCHORS_PER_IMAGE, (dy, dx, log(dh),
        log(dw))]; row i of an image is the target of its i-th positive
        anchor in anchor order, the rest is zero padding.
    rpn_match: [batch, anchors, 1] 1 positive, -1 negative, 0 neutral.
    rpn_bbox: [batch, anchors, (dy, dx, log(dh), log(dw))] predictions.
    Returns: mean smooth L1 over the coordinates of all positive anchors.
    Positives beyond the rows of target_bbox (none when the targets come
    from build_rpn_targets) have no target and are ignored.
    """
    positive = tf.equal(tf.cast(tf.squeeze(rpn_match, -1), tf.int32), 1)
    # The i-th positive anchor of an image reads row i of its targets.
    target_row = tf.cumsum(tf.cast(positive, tf.int32), axis=1, exclusive=True)
    positive &= target_row < tf.shape(target_bbox)[1]
    positive_ix = tf.where(positive)  # [P, (image, anchor)]
    targets = tf.gather_nd(target_bbox, tf.stack(
        [positive_ix[:, 0], tf.cast(tf.gather_nd(target_row, positive_ix),
                                    tf.int64)], axis=1))
    return _mean_or_zero(smooth_l1_loss(
        targets, tf.gather_nd(rpn_bbox, positive_ix)))


def mrcnn_class_loss_graph(target_class_ids, pred_class_logits,
                           active_class_ids, class_weights=None,
                           focal_gamma=None):
    """Classifier head loss.

    target_class_ids: [batch, num_rois] int, 0 background and padding.
    pred_class_logits: [batch, num_rois, num_classes].
    active_class_ids: [batch, num_classes] 1 for the classes of the dataset
        an image comes from, 0 for the others.
    class_weights: None (every class 1.0, the original loss) or
        [num_classes] floats, one per target class (background first).
    focal_gamma: None for cross entropy, or gamma >= 0 of the focal form
        (1 - p_true) ** gamma * cross entropy (gamma 0 is cross entropy).
    Returns: the loss averaged over the ROIs whose predicted class is
    active in their image, each ROI weighted by its target class's weight:
    sum(w * loss * active) / sum(w * active), as torch's weighted
    cross entropy. A prediction of a class its image's dataset cannot
    contain is not penalized; scaling all weights alike changes nothing.
    """
    logits = tf.cast(pred_class_logits, tf.float32)
    target_class_ids = tf.cast(target_class_ids, tf.int32)
    pred_class_ids = tf.argmax(logits, axis=2, output_type=tf.int32)
    # Per image (matterport read image 0's ids for the whole batch).
    pred_active = tf.gather(tf.cast(active_class_ids, tf.float32),
                            pred_class_ids, batch_dims=1)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=target_class_ids, logits=logits)
    if focal_gamma is not None:
        # cross entropy = -log(p_true), so 1 - p_true = -expm1(-loss). The
        # floor keeps pow's gradient finite where p_true rounds to 1.
        miss = tf.maximum(-tf.math.expm1(-loss), 1e-12)
        loss = tf.pow(miss, float(focal_gamma)) * loss
    if class_weights is not None:
        pred_active *= tf.gather(tf.constant(class_weights, tf.float32),
                                 target_class_ids)
    return tf.math.divide_no_nan(tf.reduce_sum(loss * pred_active),
                                 tf.reduce_sum(pred_active))


def class_loss_options(config):
    """MRCNNClassLoss keyword arguments from a Config: class_weights from
    CLASS_LOSS_WEIGHTS (None: all ones) and focal_gamma from CLASS_LOSS
    ("focal": CLASS_LOSS_GAMMA; "cross_entropy": None)."""
    weights = getattr(config, "CLASS_LOSS_WEIGHTS", None)
    focal = getattr(config, "CLASS_LOSS", "cross_entropy") == "focal"
    return {"class_weights": None if weights is None else list(weights),
            "focal_gamma": config.CLASS_LOSS_GAMMA if focal else None}


def _positive_rois(target_class_ids):
    """[P, (image, roi, class)] int64 indices of the ROIs with class > 0."""
    target_class_ids = tf.cast(target_class_ids, tf.int64)
    positive_ix = tf.where(target_class_ids > 0)
    return tf.concat([positive_ix, tf.gather_nd(
        target_class_ids, positive_ix)[:, tf.newaxis]], axis=1)


def mrcnn_bbox_loss_graph(target_bbox, target_class_ids, pred_bbox):
    """Box head loss.

    target_bbox: [batch, num_rois, (dy, dx, log(dh), log(dw))].
    target_class_ids: [batch, num_rois] int, 0 background and padding.
    pred_bbox: [batch, num_rois, num_classes, (dy, dx, log(dh), log(dw))].
    Returns: mean smooth L1 over the coordinates of the positive ROIs, each
    against the prediction for its true class.
    """
    positive = _positive_rois(target_class_ids)
    return _mean_or_zero(smooth_l1_loss(
        tf.gather_nd(target_bbox, positive[:, :2]),
        tf.gather_nd(pred_bbox, positive)))


def mrcnn_mask_loss_graph(target_masks, target_class_ids, pred_masks):
    """Mask head loss.

    target_masks: [batch, num_rois, height, width] in {0, 1}.
    target_class_ids: [batch, num_rois] int, 0 background and padding.
    pred_masks: [batch, num_rois, height, width, num_classes] probabilities.
    Returns: mean binary cross entropy over the pixels of the positive ROIs,
    each against the mask predicted for its true class.
    """
    positive = _positive_rois(target_class_ids)
    # Class axis next to the ROI axis, to gather [image, roi, class] masks.
    pred_masks = tf.transpose(tf.cast(pred_masks, tf.float32), [0, 1, 4, 2, 3])
    return _mean_or_zero(keras.ops.binary_crossentropy(
        tf.cast(tf.gather_nd(target_masks, positive[:, :2]), tf.float32),
        tf.gather_nd(pred_masks, positive)))


class _LossLayer(keras.layers.Layer):
    """Computes loss_function(*inputs) as a float32 tensor of shape [1].

    Subclasses set loss_function and default_name; the layer has no weights
    and lets a functional model output its losses.
    """

    loss_function = None
    default_name = None

    def __init__(self, **kwargs):
        kwargs.setdefault("name", self.default_name)
        # Losses are computed in float32 whatever the model's policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        return tf.reshape(self.loss_function(*inputs), [1])

    def compute_output_shape(self, input_shape):
        return (1,)


@keras.saving.register_keras_serializable(package="mrcnn")
class RPNClassLoss(_LossLayer):
    """call([rpn_match, rpn_class_logits]) -> rpn_class_loss_graph, [1]."""
    loss_function = staticmethod(rpn_class_loss_graph)
    default_name = _RPN_CLASS_LOSS


@keras.saving.register_keras_serializable(package="mrcnn")
class RPNBboxLoss(_LossLayer):
    """call([target_bbox, rpn_match, rpn_bbox]) -> rpn_bbox_loss_graph."""
    loss_function = staticmethod(rpn_bbox_loss_graph)
    default_name = _RPN_BBOX_LOSS


@keras.saving.register_keras_serializable(package="mrcnn")
class MRCNNClassLoss(_LossLayer):
    """call([target_class_ids, pred_class_logits, active_class_ids]).

    class_weights, focal_gamma: as mrcnn_class_loss_graph (from
    Config.CLASS_LOSS_WEIGHTS and Config.CLASS_LOSS / CLASS_LOSS_GAMMA).
    """
    loss_function = staticmethod(mrcnn_class_loss_graph)
    default_name = _MRCNN_CLASS_LOSS

    def __init__(self, class_weights=None, focal_gamma=None, **kwargs):
        super().__init__(**kwargs)
        self.class_weights = (None if class_weights is None
                              else [float(w) for w in class_weights])
        self.focal_gamma = None if focal_gamma is None else float(focal_gamma)

    def call(self, inputs):
        return tf.reshape(self.loss_function(
            *inputs, class_weights=self.class_weights,
            focal_gamma=self.focal_gamma), [1])

    def get_config(self):
        config = super().get_config()
        config.update(class_weights=self.class_weights,
                      focal_gamma=self.focal_gamma)
        return config


@keras.saving.register_keras_serializable(package="mrcnn")
class MRCNNBboxLoss(_LossLayer):
    """call([target_bbox, target_class_ids, pred_bbox])."""
    loss_function = staticmethod(mrcnn_bbox_loss_graph)
    default_name = _MRCNN_BBOX_LOSS


@keras.saving.register_keras_serializable(package="mrcnn")
class MRCNNMaskLoss(_LossLayer):
    """call([target_masks, target_class_ids, pred_masks])."""
    loss_function = staticmethod(mrcnn_mask_loss_graph)
    default_name = _MRCNN_MASK_LOSS
