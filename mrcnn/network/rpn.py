"""Region Proposal Network: the shared RPN head and the ProposalLayer.

The RPN head slides over each FPN level and predicts, for every anchor,
a foreground/background score and a box refinement. The ProposalLayer
turns those predictions into a fixed number of region proposals per image.

Same API and Keras layer names as matterport's ``mrcnn.model`` RPN code, so
matterport weight files load by name.
"""

import keras
import tensorflow as tf

from mrcnn.network import nms
from mrcnn.network.box_ops import clip_boxes_graph, decode_boxes_graph
from mrcnn.network.conv import Conv2D
from mrcnn.network.layer_names import RPN_MODEL


############################################################
#  RPN head
############################################################

def rpn_graph(feature_map, anchors_per_location, anchor_stride,
              conv_depth=512):
    """Builds the RPN head on one feature map.

    feature_map: [batch, height, width, depth] KerasTensor.
    anchors_per_location: anchors per feature map cell (number of ratios).
    anchor_stride: 1 puts anchors on every cell, 2 on every other cell...
    conv_depth: filters of the shared 3x3 convolution (512 in matterport).

    Returns [rpn_class_logits, rpn_probs, rpn_bbox]:
        rpn_class_logits: [batch, H * W * anchors_per_location, 2]
            (background, foreground) logits.
        rpn_probs: [batch, H * W * anchors_per_location, 2] softmax of them.
        rpn_bbox: [batch, H * W * anchors_per_location,
            (dy, dx, log(dh), log(dw))] deltas, still to be multiplied by
            RPN_BBOX_STD_DEV.
    """
    shared = Conv2D(
        conv_depth, (3, 3), padding="same", activation="relu",
        strides=anchor_stride, name="rpn_conv_shared")(feature_map)

    # Anchor scores: [batch, height, width, anchors_per_location * 2].
    x = Conv2D(
        2 * anchors_per_location, (1, 1), padding="valid",
        activation="linear", name="rpn_class_raw")(shared)
    # The reshapes and the softmax run in float32 so that with mixed
    # precision the box math and losses downstream get float32 values.
    rpn_class_logits = keras.layers.Reshape(
        (-1, 2), dtype="float32", name="rpn_class_logits_reshape")(x)
    rpn_probs = keras.layers.Activation(
        "softmax", dtype="float32", name="rpn_class_xxx")(rpn_class_logits)

    # Anchor refinements: [batch, height, width, anchors_per_location * 4].
    x = Conv2D(
        anchors_per_location * 4, (1, 1), padding="valid",
        activation="linear", name="rpn_bbox_pred")(shared)
    rpn_bbox = keras.layers.Reshape(
        (-1, 4), dtype="float32", name="rpn_bbox_reshape")(x)

    return [rpn_class_logits, rpn_probs, rpn_bbox]


def build_rpn_model(anchor_stride, anchors_per_location, depth,
                    conv_depth=512):
    """Wraps the RPN head in a Model so its weights are shared by all FPN
    levels (the model is called once per level).

    depth: channels of the feature maps (TOP_DOWN_PYRAMID_SIZE).
    Returns a keras.Model named "rpn_model" whose input is
    [batch, height, width, depth] and whose outputs are those of rpn_graph.
    """
    input_feature_map = keras.Input(
        shape=[None, None, depth], name="input_rpn_feature_map")
    outputs = rpn_graph(input_feature_map, anchors_per_location,
                        anchor_stride, conv_depth=conv_depth)
    return keras.Model([input_feature_map], outputs, name=RPN_MODEL)


############################################################
#  Proposal Layer
############################################################

@keras.saving.register_keras_serializable(package="mrcnn")
class ProposalLayer(keras.layers.Layer):
    """Turns anchor scores and deltas into region proposals.

    Keeps the pre_nms_limit best-scored anchors, applies their refinement
    deltas, clips the boxes to the image ([0, 1] normalized) and runs
    non-max suppression.

    Inputs (call's list):
        rpn_probs: [batch, num_anchors, (bg prob, fg prob)]
        rpn_bbox: [batch, num_anchors, (dy, dx, log(dh), log(dw))] raw deltas
            (before multiplying by rpn_bbox_std_dev).
        anchors: [batch, num_anchors, (y1, x1, y2, x2)] normalized.

    Returns: [batch, proposal_count, (y1, x1, y2, x2)] normalized proposals,
    best score first, zero-padded when NMS keeps fewer than proposal_count.

    builtin_ops: NMS with a fixed-size result (NonMaxSuppressionV4, the
    TFLite built-in; the same proposals); off by default.
    """

    def __init__(self, proposal_count, nms_threshold, pre_nms_limit=6000,
                 rpn_bbox_std_dev=(0.1, 0.1, 0.2, 0.2), delta_clamp=None,
                 builtin_ops=False, **kwargs):
        # Box math and NMS stay float32 even under a mixed precision policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)
        self.pre_nms_limit = int(pre_nms_limit)
        self.rpn_bbox_std_dev = tuple(float(v) for v in rpn_bbox_std_dev)
        self.delta_clamp = None if delta_clamp is None else float(delta_clamp)
        # NMS ops without an XLA kernel: Keras' predict must not compile.
        self.supports_jit = False
        self.builtin_ops = bool(builtin_ops)
        if len(self.rpn_bbox_std_dev) != 4:
            raise ValueError(
                "ProposalLayer: rpn_bbox_std_dev needs 4 values, got {}"
                .format(rpn_bbox_std_dev))

    def get_config(self):
        config = super().get_config()
        config.update({
            "proposal_count": self.proposal_count,
            "nms_threshold": self.nms_threshold,
            "pre_nms_limit": self.pre_nms_limit,
            "rpn_bbox_std_dev": list(self.rpn_bbox_std_dev),
            "delta_clamp": self.delta_clamp,
            "builtin_ops": self.builtin_ops,
        })
        return config

    def call(self, inputs):
        rpn_probs, rpn_bbox, anchors = [tf.cast(t, tf.float32)
                                        for t in inputs]
        scores = rpn_probs[:, :, 1]  # foreground probability

        # Keep the best anchors only: NMS over all of them is too slow.
        limit = tf.minimum(self.pre_nms_limit, tf.shape(anchors)[1])
        top = tf.math.top_k(scores, limit, sorted=True, name="top_anchors")
        ix = top.indices
        scores = top.values
        deltas = tf.gather(rpn_bbox, ix, batch_dims=1)
        pre_nms_anchors = tf.gather(anchors, ix, batch_dims=1)

        boxes = decode_boxes_graph(pre_nms_anchors, deltas,
                                   self.rpn_bbox_std_dev, self.delta_clamp)
        boxes = clip_boxes_graph(boxes, tf.constant([0., 0., 1., 1.]))

        # NMS has no batched exact kernel on CPU; map over images.
        proposals = tf.map_fn(
            lambda args: self._nms(*args), (boxes, scores),
            fn_output_signature=tf.TensorSpec(
                [self.proposal_count, 4], tf.float32))
        return proposals

    def _nms(self, boxes, scores):
        """boxes: [N, 4] sorted by descending scores [N].
        Returns [proposal_count, 4], zero-padded."""
        if self.builtin_ops:
            # The same proposals in ops every runtime has (see nms).
            keep, count = nms.sorted_nms(boxes, self.proposal_count,
                                         self.nms_threshold)
            proposals = tf.gather(boxes, keep)
            real = tf.range(tf.shape(keep)[0]) < count
            proposals = tf.where(real[:, None], proposals, 0.0)
            padding = self.proposal_count - tf.shape(proposals)[0]
            return tf.reshape(tf.pad(proposals, [(0, padding), (0, 0)]),
                              [self.proposal_count, 4])
        keep = tf.image.non_max_suppression(
            boxes, scores, self.proposal_count, self.nms_threshold,
            name="rpn_non_max_suppression")
        proposals = tf.gather(boxes, keep)
        padding = tf.maximum(self.proposal_count - tf.shape(proposals)[0], 0)
        return tf.pad(proposals, [(0, padding), (0, 0)])

    def compute_output_shape(self, input_shape):
        batch = input_shape[0][0]
        return (batch, self.proposal_count, 4)
