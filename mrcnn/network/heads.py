"""The box/class head and the mask head of Mask R-CNN (FPN variant).

Same functions, layer names and weight shapes as matterport's
``mrcnn.model``, so its COCO weights load by name. Matterport applied each
per-ROI layer through ``keras.layers.TimeDistributed``; here
:class:`FoldedTimeDistributed` plays that role with identical names and
weights: it folds the ROI axis into the batch axis and runs the wrapped
layer once. Keras 3's TimeDistributed loops over the ROIs instead (one
copy of the layer per ROI in the graph when their count is static), which
is far slower to build and to run, and makes batch normalization see one
ROI at a time instead of the whole batch of ROIs as in matterport's
Keras 2 graph. ``tests/test_heads.py`` keeps the numbers of both equal.
"""

import inspect

import keras
import tensorflow as tf

from mrcnn.network.backbone import BatchNorm, FoldableConv2D
from mrcnn.network.conv import Conv2D
from mrcnn.network.layer_names import (MRCNN_BBOX, MRCNN_BBOX_FC,
                                       MRCNN_CLASS, MRCNN_CLASS_LOGITS,
                                       MRCNN_MASK, ROI_ALIGN_CLASSIFIER,
                                       ROI_ALIGN_MASK)
from mrcnn.network.roi_align import PyramidROIAlign


@keras.saving.register_keras_serializable(package="mrcnn")
class FoldedTimeDistributed(keras.layers.Wrapper):
    """Applies ``layer`` to every ROI: [B, N, ...] -> [B * N, ...] -> layer
    -> [B, N, ...].

    The weights are the wrapped layer's, so their shapes and order equal
    those of ``keras.layers.TimeDistributed(layer)``; name the wrapper as
    matterport named its TimeDistributed layer (e.g. "mrcnn_class_conv1").
    """

    def __init__(self, layer, **kwargs):
        super().__init__(layer, **kwargs)
        self._passes_training = (
            "training" in inspect.signature(layer.call).parameters)

    def _inner_shape(self, input_shape):
        return (None,) + tuple(input_shape[2:])

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build(self._inner_shape(input_shape))
        self.built = True

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape(self._inner_shape(input_shape))
        return tuple(input_shape[:2]) + tuple(inner[1:])

    @staticmethod
    def _shape_list(tensor, start):
        """Dims of tensor from axis `start`: static ints where known, so
        the wrapped layer sees its channel count, dynamic scalars else."""
        dynamic = tf.shape(tensor)
        return [dim if dim is not None else dynamic[axis]
                for axis, dim in enumerate(tensor.shape) if axis >= start]

    def call(self, inputs, training=None):
        batch_and_rois = tf.shape(inputs)[:2]
        folded = tf.reshape(inputs, [-1] + self._shape_list(inputs, 2))
        kwargs = {"training": training} if self._passes_training else {}
        outputs = self.layer(folded, **kwargs)
        return tf.reshape(outputs, tf.concat(
            [batch_and_rois, tf.stack(self._shape_list(outputs, 1))], axis=0))


@keras.saving.register_keras_serializable(package="mrcnn")
class PoolSqueeze(keras.layers.Layer):
    """[batch, num_rois, 1, 1, channels] -> [batch, num_rois, channels]."""

    def call(self, inputs):
        return tf.squeeze(inputs, axis=[2, 3])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[4])


@keras.saving.register_keras_serializable(package="mrcnn")
class BboxReshape(keras.layers.Layer):
    """[batch, num_rois, num_classes * 4] -> [batch, num_rois, num_classes, 4].

    Like matterport's ``Reshape((-1, num_classes, 4))`` named "mrcnn_bbox",
    but keeps a static ROI count in the output shape.
    """

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)

    def call(self, inputs):
        if inputs.shape[1] is not None:
            # A static ROI count: the shape needs no Shape op of the input,
            # which tf2onnx's reshape folding would take from the
            # TimeDistributed layer's folded [batch * rois, ...] tensor.
            return tf.reshape(inputs, [-1, inputs.shape[1],
                                       self.num_classes, 4])
        batch_and_rois = tf.shape(inputs)[:2]
        return tf.reshape(inputs, tf.concat(
            [batch_and_rois, [self.num_classes, 4]], axis=0))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.num_classes, 4)

    def get_config(self):
        config = super().get_config()
        config["num_classes"] = self.num_classes
        return config


@keras.saving.register_keras_serializable(package="mrcnn")
class PositiveRois(keras.layers.Layer):
    """The first ROIs of each image, as many as the most positives of any
    image of the batch (at least one):
    [rois [batch, T, 4], target_class_ids [batch, T]] -> [batch, P, 4].

    DetectionTargetLayer puts the positive ROIs first and the mask loss
    reads those only, so in training the mask head needs no other row: with
    its batch norm frozen, its loss and gradients are those of the whole
    set, for a fraction of the work (the mask head is the costliest part of
    a training step).

    float32 whatever the dtype policy: its ROIs are those the mask targets
    were cut at, and a 16-bit copy would crop a pixel or two elsewhere.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        rois, target_class_ids = inputs
        positives = tf.reduce_sum(tf.cast(target_class_ids > 0, tf.int32),
                                  axis=1)
        count = tf.maximum(tf.reduce_max(positives), 1)
        return rois[:, :count]

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], None, 4)


def _conv_bn_relu(x, filters, kernel_size, conv_name, bn_name, train_bn,
                  fold_bn=True, padding="valid"):
    """Per-ROI Conv2D + BatchNorm + ReLU on [batch, num_rois, h, w, c]; the
    conv applies the batch norm where it is frozen (see FoldableConv2D)."""
    conv = FoldableConv2D(filters, kernel_size, padding=padding)
    batch_norm = BatchNorm(train_bn=train_bn, fold=fold_bn)
    conv.link_batch_norm(batch_norm)
    x = FoldedTimeDistributed(conv, name=conv_name)(x)
    x = FoldedTimeDistributed(batch_norm, name=bn_name)(x)
    return keras.layers.Activation("relu")(x)


def fpn_classifier_graph(rois, feature_maps, image_meta, pool_size,
                         num_classes, train_bn=True, fc_layers_size=1024,
                         fold_bn=True):
    """Builds the box regression and classification head.

    rois: [batch, num_rois, (y1, x1, y2, x2)] proposals, normalized.
    feature_maps: [P2, P3, P4, P5] pyramid levels.
    image_meta: [batch, IMAGE_META_SIZE] (see compose_image_meta).
    pool_size: side of the square ROIAlign output (POOL_SIZE, 7).
    num_classes: number of classes, background included.
    train_bn: passed to the head's BatchNorm layers.
    fc_layers_size: channels of the two "fully connected" layers (implemented
        as convs, as in matterport).
    fold_bn: convs apply their frozen batch norm (see FoldableConv2D).
    Returns:
        mrcnn_class_logits: [batch, num_rois, num_classes] classifier logits.
        mrcnn_probs: [batch, num_rois, num_classes] class probabilities.
        mrcnn_bbox: [batch, num_rois, num_classes, (dy, dx, log(dh), log(dw))]
            class-specific box deltas (still scaled by BBOX_STD_DEV).
    """
    # [batch, num_rois, pool_size, pool_size, channels]
    x = PyramidROIAlign([pool_size, pool_size], name=ROI_ALIGN_CLASSIFIER)(
        [rois, image_meta] + list(feature_maps))
    # A pool_size x pool_size valid conv is a fully connected layer per ROI.
    x = _conv_bn_relu(x, fc_layers_size, (pool_size, pool_size),
                      "mrcnn_class_conv1", "mrcnn_class_bn1", train_bn,
                      fold_bn)
    x = _conv_bn_relu(x, fc_layers_size, (1, 1),
                      "mrcnn_class_conv2", "mrcnn_class_bn2", train_bn,
                      fold_bn)
    shared = PoolSqueeze(name="pool_squeeze")(x)  # [batch, num_rois, fc]

    # Dense acts on the last axis, so no per-ROI wrapper is needed. The
    # outputs feed box math and losses: keep them float32 under mixed
    # precision.
    mrcnn_class_logits = keras.layers.Dense(
        num_classes, dtype="float32", name=MRCNN_CLASS_LOGITS)(shared)
    mrcnn_probs = keras.layers.Activation(
        "softmax", dtype="float32", name=MRCNN_CLASS)(mrcnn_class_logits)

    x = keras.layers.Dense(num_classes * 4, activation="linear",
                           dtype="float32", name=MRCNN_BBOX_FC)(shared)
    mrcnn_bbox = BboxReshape(num_classes, dtype="float32",
                             name=MRCNN_BBOX)(x)
    return mrcnn_class_logits, mrcnn_probs, mrcnn_bbox


def build_fpn_mask_graph(rois, feature_maps, image_meta, pool_size,
                         num_classes, train_bn=True, conv_depth=256,
                         fold_bn=True):
    """Builds the mask head.

    rois: [batch, num_rois, (y1, x1, y2, x2)] boxes, normalized.
    feature_maps: [P2, P3, P4, P5] pyramid levels.
    image_meta: [batch, IMAGE_META_SIZE].
    pool_size: side of the square ROIAlign output (MASK_POOL_SIZE, 14).
    num_classes: number of classes, background included.
    train_bn: passed to the head's BatchNorm layers.
    conv_depth: channels of the 3x3 convs and the deconv (256 in matterport).
    fold_bn: convs apply their frozen batch norm (see FoldableConv2D).
    Returns: [batch, num_rois, 2 * pool_size, 2 * pool_size, num_classes]
        per-class mask probabilities (sigmoid).
    """
    x = PyramidROIAlign([pool_size, pool_size], name=ROI_ALIGN_MASK)(
        [rois, image_meta] + list(feature_maps))
    for i in range(1, 5):
        x = _conv_bn_relu(x, conv_depth, (3, 3), "mrcnn_mask_conv{}".format(i),
                          "mrcnn_mask_bn{}".format(i), train_bn, fold_bn,
                          padding="same")
    x = FoldedTimeDistributed(
        keras.layers.Conv2DTranspose(conv_depth, (2, 2), strides=2,
                                     activation="relu"),
        name="mrcnn_mask_deconv")(x)
    # float32 output: the mask loss and the unmolding work in float32.
    return FoldedTimeDistributed(
        Conv2D(num_classes, (1, 1), strides=1,
               activation="sigmoid", dtype="float32"),
        dtype="float32", name=MRCNN_MASK)(x)
