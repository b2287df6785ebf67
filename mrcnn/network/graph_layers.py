"""Small glue layers of the Mask R-CNN graph.

Keras 3 does not allow raw TensorFlow ops on symbolic tensors, so every
reshaping, slicing or constant that the graph needs between the big stages
lives in one of these layers. Each takes plain values and has get_config.
"""

import numpy as np
import tensorflow as tf
import keras

from mrcnn.network import box_ops
from mrcnn.structures.anchors import generate_pyramid_anchors
from mrcnn.structures.boxes import norm_boxes


class Float32Layer(keras.layers.Layer):
    """A layer that computes in float32 whatever the global dtype policy.

    These layers carry boxes, anchors and image metas: under a mixed
    precision policy Keras would cast their inputs to 16 bits, and a
    bfloat16 box is off by up to 4 pixels at 1024 px.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)


class AnchorLayer(Float32Layer):
    """Constant anchors of a fixed image shape, tiled over the batch.

    The anchors are computed once in numpy when the layer is built; no
    variable is created, so the graph stays usable in predict and export.

    Input: the image batch [batch, height, width, channels] (only its batch
    size is used). Output: [batch, num_anchors, (y1, x1, y2, x2)] normalized.
    """

    def __init__(self, scales, ratios, feature_shapes, feature_strides,
                 anchor_stride, image_shape, **kwargs):
        super().__init__(**kwargs)
        self.scales = [float(s) for s in scales]
        self.ratios = [float(r) for r in ratios]
        self.feature_shapes = [[int(v) for v in shape] for shape in feature_shapes]
        self.feature_strides = [int(s) for s in feature_strides]
        self.anchor_stride = int(anchor_stride)
        self.image_shape = [int(v) for v in image_shape]
        anchors = generate_pyramid_anchors(
            self.scales, self.ratios, np.array(self.feature_shapes),
            self.feature_strides, self.anchor_stride)
        self.anchors = norm_boxes(anchors, self.image_shape[:2]).astype(
            np.float32)

    def call(self, image):
        batch = tf.shape(image)[0]
        anchors = tf.constant(self.anchors)
        return tf.tile(anchors[tf.newaxis], [batch, 1, 1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.anchors.shape[0], 4)

    def get_config(self):
        config = super().get_config()
        config.update(scales=self.scales, ratios=self.ratios,
                      feature_shapes=self.feature_shapes,
                      feature_strides=self.feature_strides,
                      anchor_stride=self.anchor_stride,
                      image_shape=self.image_shape)
        return config


class NormBoxesLayer(Float32Layer):
    """Pixel boxes to normalized boxes, using the image tensor's size.

    Inputs: [boxes [batch, N, (y1, x1, y2, x2)] pixels, image [batch, H, W, C]].
    Output: [batch, N, (y1, x1, y2, x2)] normalized, float32.
    """

    def call(self, inputs):
        boxes, image = inputs
        return box_ops.norm_boxes_graph(boxes, tf.shape(image)[1:3])

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


class ActiveClassIdsLayer(Float32Layer):
    """active_class_ids [batch, num_classes] sliced out of image_meta."""

    def call(self, image_meta):
        return box_ops.parse_image_meta_graph(image_meta)["active_class_ids"]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] - 12)


class DetectionBoxesLayer(Float32Layer):
    """The (y1, x1, y2, x2) part of DetectionLayer's output.

    Input: [batch, num_detections, (y1, x1, y2, x2, class_id, score)].
    Output: [batch, num_detections, (y1, x1, y2, x2)] normalized.
    """

    def call(self, detections):
        return detections[..., :4]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (4,)


class IdentityLayer(Float32Layer):
    """Gives a tensor a layer name of its own (e.g. "output_rois")."""

    def call(self, inputs):
        return tf.identity(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape
