"""ROI Align over a feature pyramid (matterport's ``PyramidROIAlign``).

Each box is pooled from one level of the pyramid P2..P5, chosen from the
box's size as in the FPN paper (Lin et al. 2017, Eq. 1): small boxes read
the fine, high-resolution maps and large boxes the coarse ones.
"""

import keras
import tensorflow as tf

# Pyramid levels the feature maps stand for, in the order they are passed.
PYRAMID_LEVELS = (2, 3, 4, 5)
# ImageNet pre-training size, the box size that maps to the level 4 (FPN).
CANONICAL_SIZE = 224.0
CANONICAL_LEVEL = 4


def roi_pyramid_level(boxes, image_area):
    """Pyramid level of each box, FPN Eq. 1.

    level = clip(4 + round(log2(sqrt(h * w) / (224 / sqrt(image_area)))), 2, 5)

    with h, w normalized and image_area in pixels. ``tf.round`` (used by
    matterport) rounds half to even, so a box whose log2 ratio is exactly
    -1.5, -0.5 or 0.5 gets level 2, 4 and 4. The rule is evaluated as
    comparisons of the squared ratio r = h * w * image_area / 224**2 with the
    rounding boundaries 2**-3, 2**-1 and 2**1: identical to the formula above,
    but exact on the boundaries (no float log) and free of log(0) for the
    all-zero padding boxes, which land on level 2.

    boxes: [..., (y1, x1, y2, x2)] normalized, float32.
    image_area: scalar float32, height * width of the molded image in pixels.
    Returns: [...] int32 level in 2..5.
    """
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    squared_ratio = tf.maximum(height * width, 0.0) * (
        image_area / CANONICAL_SIZE ** 2)
    steps_up = (tf.cast(squared_ratio > 2.0 ** -3, tf.int32)
                + tf.cast(squared_ratio >= 2.0 ** -1, tf.int32)
                + tf.cast(squared_ratio > 2.0 ** 1, tf.int32))
    return PYRAMID_LEVELS[0] + steps_up


@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidROIAlign(keras.layers.Layer):
    """Crops and resizes each box from its pyramid level.

    pool_shape: (pool_height, pool_width) of the output regions (an int
        stands for a square).

    Inputs (a list):
        boxes: [batch, num_boxes, (y1, x1, y2, x2)] normalized; all-zero rows
            (padding) are pooled too and give level-2 crops of a point.
        image_meta: [batch, META] from compose_image_meta; only the molded
            image shape of the first image is read (all images of a batch
            share it).
        P2, P3, P4, P5: [batch, height_i, width_i, channels] feature maps.

    Output: [batch, num_boxes, pool_height, pool_width, channels] float32, in
    the order of the input boxes. No gradient flows to the boxes.
    """

    def __init__(self, pool_shape, **kwargs):
        # Box math must stay float32 whatever the global mixed precision
        # policy: a float16 box loses about a pixel at 1024 px.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if isinstance(pool_shape, int):
            pool_shape = (pool_shape, pool_shape)
        self.pool_shape = tuple(int(size) for size in pool_shape)
        if len(self.pool_shape) != 2 or min(self.pool_shape) < 1:
            raise ValueError("PyramidROIAlign: pool_shape must be two "
                             "positive ints, got {!r}".format(pool_shape))
        # Data-dependent shapes (tf.where per level): keep it out of XLA.
        self.supports_jit = False

    def call(self, inputs):
        boxes, image_meta, feature_maps = inputs[0], inputs[1], inputs[2:]
        if len(feature_maps) != len(PYRAMID_LEVELS):
            raise ValueError(
                "PyramidROIAlign: expected [boxes, image_meta, P2, P3, P4, "
                "P5], got {} feature maps".format(len(feature_maps)))
        # The boxes are proposals or detections: they are not trained through
        # the crop (as in matterport).
        boxes = tf.stop_gradient(tf.cast(boxes, tf.float32))
        image_shape = tf.cast(image_meta[0, 4:6], tf.float32)
        levels = roi_pyramid_level(boxes, image_shape[0] * image_shape[1])

        # Pool all boxes of the batch as one flat list, one crop call a level.
        flat_boxes = tf.reshape(boxes, [-1, 4])
        flat_levels = tf.reshape(levels, [-1])
        flat_image_ix = tf.repeat(tf.range(tf.shape(boxes)[0]),
                                  tf.shape(boxes)[1])
        crops, positions = [], []
        for level, feature_map in zip(PYRAMID_LEVELS, feature_maps):
            ix = tf.where(tf.equal(flat_levels, level))[:, 0]
            crops.append(tf.image.crop_and_resize(
                tf.cast(feature_map, tf.float32), tf.gather(flat_boxes, ix),
                tf.gather(flat_image_ix, ix), self.pool_shape,
                method="bilinear"))
            positions.append(ix)
        crops = tf.concat(crops, axis=0)
        # Each flat position occurs exactly once: sorting restores box order.
        crops = tf.gather(crops, tf.argsort(tf.concat(positions, axis=0)))
        output_shape = tf.concat(
            [tf.shape(boxes)[:2], tf.shape(crops)[1:]], axis=0)
        return tf.reshape(crops, output_shape)

    def compute_output_shape(self, input_shape):
        boxes_shape, feature_shape = input_shape[0], input_shape[2]
        return (tuple(boxes_shape[:2]) + self.pool_shape
                + (feature_shape[-1],))

    def get_config(self):
        config = super().get_config()
        config["pool_shape"] = list(self.pool_shape)
        return config
