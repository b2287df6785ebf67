"""skimage's bilinear resize in TensorFlow, bit for bit.

``utils.resize_image`` and ``utils.unmold_mask`` resize with
``skimage.transform.resize(order=1)``; the exported graph
(``mrcnn.inference.export``) molds images and pastes masks with this twin,
so that the SavedModel gives ``detect()``'s numbers. ``tests/test_export.py``
holds the two equal.
"""

import tensorflow as tf


def _linear_taps(out_size, in_size, offset=None):
    """Source rows and weights of scipy.ndimage's order-1 zoom (grid mode).

    Output row k reads c = (k + offset + 0.5) * (in_size / out_size) - 0.5,
    between source rows floor(c) and floor(c) + 1 with weights w0 = 1 - t,
    w1 = 1 - w0 (t the fraction), exactly as ndimage computes them. Rows are
    indexed into the source padded by one zero row on each side (skimage's
    mode="constant", cval=0), so the returned index is floor(c) + 1.
    offset: int32 scalar added to k (to start the rows inside a box).
    Returns (index [out_size] int32, w0, w1 [out_size] float64).
    """
    zoom = tf.cast(in_size, tf.float64) / tf.cast(out_size, tf.float64)
    rows = tf.range(out_size)
    if offset is not None:
        rows = rows + offset
    c = (tf.cast(rows, tf.float64) + 0.5) * zoom - 0.5
    floor = tf.floor(c)
    w0 = 1.0 - (c - floor)
    w1 = 1.0 - w0
    return tf.cast(floor, tf.int32) + 1, w0, w1


def resize_bilinear_like_skimage(images, out_height, out_width):
    """skimage.transform.resize(order=1, mode="constant", cval=0,
    clip=True, anti_aliasing=False) of each image, bit for bit.

    images: [N, h, w] or [N, h, w, C] numeric. out_height, out_width: int32
    scalars. Returns float64 [N, out_height, out_width(, C)]: each image
    resized (the channels are not mixed) and clipped to its own min and max.
    """
    x = tf.cast(images, tf.float64)
    rank = len(images.shape)
    reduce_axes = list(range(1, rank))
    low = tf.reduce_min(x, axis=reduce_axes, keepdims=True)
    high = tf.reduce_max(x, axis=reduce_axes, keepdims=True)
    padding = [[0, 0], [1, 1], [1, 1]] + [[0, 0]] * (rank - 3)
    x = tf.pad(x, padding)
    y_ix, wy0, wy1 = _linear_taps(out_height, tf.shape(images)[1])
    x_ix, wx0, wx1 = _linear_taps(out_width, tf.shape(images)[2])
    channel_dims = [1] * (rank - 3)
    wy0 = tf.reshape(wy0, [1, -1, 1] + channel_dims)
    wy1 = tf.reshape(wy1, [1, -1, 1] + channel_dims)
    wx0 = tf.reshape(wx0, [1, 1, -1] + channel_dims)
    wx1 = tf.reshape(wx1, [1, 1, -1] + channel_dims)
    top = tf.gather(x, y_ix, axis=1)
    bottom = tf.gather(x, y_ix + 1, axis=1)

    def columns(rows, offset):
        return tf.gather(rows, x_ix + offset, axis=2)

    # Summed in ndimage's order; a different order changes the last bit,
    # and the uint8 cast that follows truncates.
    total = (columns(top, 0) * wy0) * wx0
    total = total + (columns(top, 1) * wy0) * wx1
    total = total + (columns(bottom, 0) * wy1) * wx0
    total = total + (columns(bottom, 1) * wy1) * wx1
    return tf.clip_by_value(total, low, high)
