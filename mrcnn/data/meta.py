"""The image meta vector, pixel normalization and backbone feature sizes.

matterport's ``compose_image_meta`` / ``parse_image_meta`` and
``mold_image`` / ``unmold_image``, plus ``compute_backbone_shapes``, which
the anchors of the training feed and of ``MaskRCNN.get_anchors`` share.
"""

import math

import numpy as np


def compose_image_meta(image_id, original_image_shape, image_shape,
                       window, scale, active_class_ids):
    """Packs the attributes of an image into one 1D array.

    image_id: int ID of the image. Useful for debugging.
    original_image_shape: [H, W, C] before resizing or padding.
    image_shape: [H, W, C] after resizing and padding.
    window: (y1, x1, y2, x2) in pixels. The area of the image where the real
        image is (excluding the padding).
    scale: The scaling factor applied to the original image (float32).
    active_class_ids: [NUM_CLASSES] 1 for the classes of the image's dataset.
    Returns: [12 + NUM_CLASSES] float64 array.
    """
    return np.array(
        [image_id]
        + list(original_image_shape)
        + list(image_shape)
        + list(window)
        + [scale]
        + list(active_class_ids), dtype=np.float64)


def parse_image_meta(meta):
    """Splits image meta arrays into their parts.

    meta: [batch, meta_length] (or one [meta_length] vector, which gives
        unbatched parts).
    Returns a dict of numpy arrays: image_id, original_image_shape,
    image_shape, window, active_class_ids (int32) and scale (float32).
    """
    meta = np.asarray(meta)
    if meta.ndim not in (1, 2) or meta.shape[-1] < 12:
        raise ValueError("image meta must be [batch, 12 + NUM_CLASSES] or "
                         "[12 + NUM_CLASSES], got shape {}".format(meta.shape))
    return {
        "image_id": meta[..., 0].astype(np.int32),
        "original_image_shape": meta[..., 1:4].astype(np.int32),
        "image_shape": meta[..., 4:7].astype(np.int32),
        "window": meta[..., 7:11].astype(np.int32),
        "scale": meta[..., 11].astype(np.float32),
        "active_class_ids": meta[..., 12:].astype(np.int32),
    }


def mold_image(images, config):
    """RGB images (uint8 or float) to float32 minus the mean pixel."""
    return (np.asarray(images, dtype=np.float32)
            - np.asarray(config.MEAN_PIXEL, dtype=np.float32))


def unmold_image(normalized_images, config):
    """Inverse of mold_image: adds the mean pixel back, returns uint8.

    Values are rounded (float32 round trips can land a hair below an
    integer) and clipped to 0..255.
    """
    images = np.asarray(normalized_images, dtype=np.float32) + np.asarray(
        config.MEAN_PIXEL, dtype=np.float32)
    return np.clip(np.round(images), 0, 255).astype(np.uint8)


def compute_backbone_shapes(config, image_shape):
    """[levels, (height, width)] of the backbone feature maps.

    A callable BACKBONE brings its own COMPUTE_BACKBONE_SHAPE(image_shape).
    """
    if callable(config.BACKBONE):
        return config.COMPUTE_BACKBONE_SHAPE(image_shape)
    return np.array([[int(math.ceil(image_shape[0] / stride)),
                      int(math.ceil(image_shape[1] / stride))]
                     for stride in config.BACKBONE_STRIDES])
