"""Mask pasting for the ONNX and LiteRT exports: ``utils.unmold_mask`` in
float32 ops without branches.

The SavedModel pastes each mask with ``resize_bilinear_like_skimage``
(float64, bit for bit) under a ``tf.cond`` that skips empty boxes. LiteRT
has no float64 arithmetic and tf2onnx mistypes a ``tf.cond`` nested in a
loop, so these exports paste with the same bilinear taps
(those of ``resize_graph._linear_taps``) in float32, applied one axis after the
other. A pixel can differ only where the resized probability lies within
float32 rounding of MASK_THRESHOLD; tests/test_export_formats.py compares
the pasted masks with detect()'s.
"""

import tensorflow as tf

from mrcnn.structures.masks import MASK_THRESHOLD


def _axis_taps(start, length, mask_size, image_size):
    """Taps of one axis for pixels 0..image_size-1 of a box starting at
    pixel `start`, `length` pixels long.

    Returns (index [image_size] int32 into the mask padded by one zero on
    each side, w0, w1 [image_size] float32, inside [image_size] bool).
    """
    pixels = tf.range(image_size)
    inside = (pixels >= start) & (pixels < start + length)
    # As resize_graph._linear_taps, for row k = pixel - start of the box.
    zoom = tf.cast(mask_size, tf.float32) / tf.cast(
        tf.maximum(length, 1), tf.float32)
    coord = (tf.cast(pixels - start, tf.float32) + 0.5) * zoom - 0.5
    floor = tf.floor(coord)
    w0 = 1.0 - (coord - floor)
    index = tf.clip_by_value(tf.cast(floor, tf.int32) + 1, 0, mask_size)
    return index, w0, 1.0 - w0, inside


def paste_mask(mask, box, image_hw):
    """One mask resized to its box and thresholded, in an image-size frame.

    mask: float32 [h, w] probabilities spanning the box.
    box: int32 (y1, x1, y2, x2) pixels (may reach outside the image; an
        empty box gives an empty mask).
    image_hw: (height, width) python ints or int32 scalars.
    Returns bool [height, width].
    """
    mask_h, mask_w = mask.shape[0], mask.shape[1]
    y1, x1, y2, x2 = tf.unstack(box)
    rows, row_w0, row_w1, row_in = _axis_taps(y1, y2 - y1, mask_h,
                                              image_hw[0])
    cols, col_w0, col_w1, col_in = _axis_taps(x1, x2 - x1, mask_w,
                                              image_hw[1])
    padded = tf.pad(mask, [[1, 1], [1, 1]])
    # Rows first: [height, w + 2], then columns: [height, width].
    by_rows = (tf.gather(padded, rows) * row_w0[:, None]
               + tf.gather(padded, rows + 1) * row_w1[:, None])
    resized = (tf.gather(by_rows, cols, axis=1) * col_w0[None, :]
               + tf.gather(by_rows, cols + 1, axis=1) * col_w1[None, :])
    # skimage clips the result to the input's range.
    resized = tf.clip_by_value(resized, tf.reduce_min(mask),
                               tf.reduce_max(mask))
    return (resized >= MASK_THRESHOLD) & row_in[:, None] & col_in[None, :]
