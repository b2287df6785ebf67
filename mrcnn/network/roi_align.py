"""ROI Align over a feature pyramid (matterport's ``PyramidROIAlign``).

Each box is pooled from one level of the pyramid P2..P5, chosen from the
box's size as in the FPN paper (Lin et al. 2017, Eq. 1): small boxes read
the fine, high-resolution maps and large boxes the coarse ones.

The crops use ``tf.image.crop_and_resize`` (or, with ``builtin_ops``, the
same crops by gathers: :func:`crop_and_resize_gather`, for LiteRT, which
has no built-in for that op); its gradient to the feature maps
is computed here (see :func:`crop_and_resize`): TensorFlow's CPU kernel for
it adds into the image gradient from several threads without locking, and
overlapping boxes (which ROIs always are) lose part of their gradient.
"""

import keras
import tensorflow as tf

# Pyramid levels the feature maps stand for, in the order they are passed.
PYRAMID_LEVELS = (2, 3, 4, 5)
# ImageNet pre-training size, the box size that maps to the level 4 (FPN).
CANONICAL_SIZE = 224.0
CANONICAL_LEVEL = 4


def log2_graph(x):
    """Base-2 logarithm of a float tensor (elementwise, any shape).

    matterport's helper for the FPN level formula; roi_pyramid_level
    evaluates that formula without logs (exact on the level boundaries).
    """
    return tf.math.log(x) / tf.math.log(2.0)


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


def _sample_taps(low, high, size, crop):
    """Where crop_and_resize samples along one axis, as its kernel does.

    low, high: [N] box edges, normalized. size: image length (pixels, int32
    scalar). crop: number of samples (python int).
    Returns (first [N, crop] int32, second [N, crop] int32, lerp [N, crop]
    float32, valid [N, crop] bool): each sample is read from pixels
    ``first`` and ``second`` with weights 1 - lerp and lerp; samples outside
    the image are invalid (the op writes its extrapolation value there).
    """
    last = tf.cast(size - 1, tf.float32)
    if crop > 1:
        step = (high - low) * last / (crop - 1)
        coord = (low[:, None] * last
                 + tf.range(crop, dtype=tf.float32)[None, :] * step[:, None])
    else:
        coord = tf.tile((0.5 * (low + high) * last)[:, None], [1, crop])
    valid = (coord >= 0.0) & (coord <= last)
    first = tf.floor(coord)
    return (tf.cast(first, tf.int32), tf.cast(tf.math.ceil(coord), tf.int32),
            coord - first, valid)


def _crop_and_resize_image_grad(grad, image_shape, boxes, box_indices,
                                crop_size):
    """Gradient of bilinear crop_and_resize with respect to its image.

    Each output pixel spreads its gradient over the four input pixels it was
    interpolated from, summed with ``unsorted_segment_sum`` (exact, and the
    same on any number of threads).
    grad: [N, crop_h, crop_w, C]. image_shape: [4] int32 (B, H, W, C).
    Returns: [B, H, W, C] float32.
    """
    height, width, channels = image_shape[1], image_shape[2], image_shape[3]
    top, bottom, y_lerp, y_valid = _sample_taps(
        boxes[:, 0], boxes[:, 2], height, crop_size[0])
    left, right, x_lerp, x_valid = _sample_taps(
        boxes[:, 1], boxes[:, 3], width, crop_size[1])
    # The four taps of each sample, as [N, crop_h, crop_w, 4].
    rows = tf.stack([top, top, bottom, bottom], axis=-1)[:, :, None, :]
    cols = tf.stack([left, right, left, right], axis=-1)[:, None, :, :]
    y_weight = tf.stack([1 - y_lerp, 1 - y_lerp, y_lerp, y_lerp], -1)
    x_weight = tf.stack([1 - x_lerp, x_lerp, 1 - x_lerp, x_lerp], -1)
    valid = y_valid[:, :, None] & x_valid[:, None, :]
    weights = (y_weight[:, :, None, :] * x_weight[:, None, :, :]
               * tf.cast(valid, tf.float32)[..., None])
    # Invalid samples have weight 0; any in-range index will do for them.
    pixel = (box_indices[:, None, None, None] * height + rows) * width + cols
    pixel = tf.where(valid[..., None], pixel, tf.zeros_like(pixel))
    updates = weights[..., None] * tf.cast(grad, tf.float32)[:, :, :, None, :]
    summed = tf.math.unsorted_segment_sum(
        tf.reshape(updates, [-1, channels]), tf.reshape(pixel, [-1]),
        image_shape[0] * height * width)
    return tf.reshape(summed, image_shape)


def crop_and_resize(image, boxes, box_indices, crop_size):
    """``tf.image.crop_and_resize`` (bilinear) with an exact image gradient.

    image: [B, H, W, C] float32. boxes: [N, (y1, x1, y2, x2)] normalized.
    box_indices: [N] int32 image of each box. crop_size: (crop_h, crop_w).
    Returns: [N, crop_h, crop_w, C], identical to tf.image.crop_and_resize.
    The gradient flows to the image only (the boxes get none), computed by
    ``_crop_and_resize_image_grad`` instead of TensorFlow's CPU kernel,
    which loses updates when boxes overlap (a data race between threads).
    """
    boxes = tf.stop_gradient(boxes)
    box_indices = tf.cast(box_indices, tf.int32)
    crop_size = tuple(int(size) for size in crop_size)

    @tf.custom_gradient
    def crop(image):
        crops = tf.image.crop_and_resize(image, boxes, box_indices, crop_size,
                                         method="bilinear")

        def grad(upstream):
            # A gather after the crop hands over IndexedSlices.
            upstream = tf.convert_to_tensor(upstream)
            return _crop_and_resize_image_grad(
                upstream, tf.shape(image), boxes, box_indices, crop_size)
        return crops, grad
    return crop(image)


def crop_and_resize_gather(image, boxes, box_indices, crop_size):
    """``tf.image.crop_and_resize`` (bilinear, extrapolation 0) by gathers.

    image: [B, H, W, C] float32. boxes: [N, (y1, x1, y2, x2)] normalized.
    box_indices: [N] int32 image of each box. crop_size: (crop_h, crop_w)
    python ints.
    Returns [N, crop_h, crop_w, C] float32: the four taps of each sample
    weighted in the order of TensorFlow's CPU kernel (left-right first,
    then top-bottom), so that the crops agree to the last bit or so.
    """
    shape = tf.shape(image)
    height, width, channels = shape[1], shape[2], shape[3]
    top, bottom, y_lerp, y_valid = _sample_taps(
        boxes[:, 0], boxes[:, 2], height, crop_size[0])
    left, right, x_lerp, x_valid = _sample_taps(
        boxes[:, 1], boxes[:, 3], width, crop_size[1])
    # Out-of-image taps are clamped for the gather; their samples are zeroed.
    top = tf.clip_by_value(top, 0, height - 1)
    bottom = tf.clip_by_value(bottom, 0, height - 1)
    left = tf.clip_by_value(left, 0, width - 1)
    right = tf.clip_by_value(right, 0, width - 1)
    pixels = tf.reshape(image, [-1, channels])
    image_base = tf.cast(box_indices, tf.int32)[:, None, None] * height

    def taps(rows, cols):
        # [N, crop_h, crop_w] flat pixel indices -> [N, crop_h, crop_w, C]
        index = (image_base + rows[:, :, None]) * width + cols[:, None, :]
        return tf.gather(pixels, index)

    x_lerp = x_lerp[:, None, :, None]
    y_lerp = y_lerp[:, :, None, None]
    top_left, top_right = taps(top, left), taps(top, right)
    bottom_left, bottom_right = taps(bottom, left), taps(bottom, right)
    upper = top_left + (top_right - top_left) * x_lerp
    lower = bottom_left + (bottom_right - bottom_left) * x_lerp
    crops = upper + (lower - upper) * y_lerp
    valid = y_valid[:, :, None, None] & x_valid[:, None, :, None]
    return tf.where(valid, crops, tf.zeros_like(crops))



@keras.saving.register_keras_serializable(package="mrcnn")
class PyramidROIAlign(keras.layers.Layer):
    """Crops and resizes each box from its pyramid level.

    pool_shape: (pool_height, pool_width) of the output regions (an int
        stands for a square).
    builtin_ops: crop with gathers (:func:`crop_and_resize_gather`,
        the same crops) instead of ``tf.image.crop_and_resize``, for the
        runtimes without that op (LiteRT); off by default.

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

    def __init__(self, pool_shape, builtin_ops=False, **kwargs):
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
        self.builtin_ops = bool(builtin_ops)
        # CropAndResize has no XLA kernel, and tf.where per level gives
        # data-dependent shapes: Keras' predict must not compile it.
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
        crop = crop_and_resize_gather if self.builtin_ops else crop_and_resize
        crops, positions = [], []
        for level, feature_map in zip(PYRAMID_LEVELS, feature_maps):
            ix = tf.where(tf.equal(flat_levels, level))[:, 0]
            crops.append(crop(
                tf.cast(feature_map, tf.float32), tf.gather(flat_boxes, ix),
                tf.gather(flat_image_ix, ix), self.pool_shape))
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
        config["builtin_ops"] = self.builtin_ops
        return config
