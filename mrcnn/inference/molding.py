"""Inference helpers of ``MaskRCNN``: checking and molding the input images,
padding the last batch, and the detect function that runs the mask head on
the real detections only.

Molding is the numpy half; ``mrcnn.inference.export`` writes the same steps as a
TensorFlow graph, and tests hold the two equal.
"""

from collections import OrderedDict

import numpy as np
import tensorflow as tf
import keras

from mrcnn.network import layer_names
from mrcnn.structures.anchors import generate_pyramid_anchors
from mrcnn.structures.boxes import norm_boxes
from mrcnn.structures.resizing import resize_image_for_config
from mrcnn.data import (compose_image_meta, compute_backbone_shapes,
                        mold_image)


def check_detect_image(image, index, channels):
    """One image given to detect(), as an [H, W, channels] array.

    index: the image's position in the list, for error messages.
    A 2D image is stacked to three channels when channels is 3. Raises
    ValueError naming the image for a wrong shape, an empty image,
    non-numeric, NaN or infinite pixels, integers outside 0..255 and float
    images in [0, 1] (mold_image expects 0..255).
    """
    image = np.asarray(image)
    if image.ndim == 2 and channels == 3:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != channels:
        raise ValueError(
            "detect(): image {} has shape {}; expected [height, width, {}]"
            " (IMAGE_CHANNEL_COUNT)".format(index, image.shape, channels))
    if min(image.shape[:2]) < 1:
        raise ValueError("detect(): image {} is empty (shape {})".format(
            index, image.shape))
    if image.dtype != np.uint8:
        _check_pixel_values(image, index)
    return image


def _check_pixel_values(image, index):
    """Raises ValueError for pixels of a non-uint8 image mold_image cannot
    use as 0..255 values."""
    if np.issubdtype(image.dtype, np.integer) and image.size and (
            image.min() < 0 or image.max() > 255):
        raise ValueError(
            "detect(): image {} has {} pixels from {} to {}; pass "
            "values in 0..255 (e.g. skimage.util.img_as_ubyte)".format(
                index, image.dtype, image.min(), image.max()))
    if not np.issubdtype(image.dtype, np.number):
        raise ValueError("detect(): image {} has dtype {}".format(
            index, image.dtype))
    if not np.all(np.isfinite(image)):
        raise ValueError("detect(): image {} has NaN or infinite "
                         "pixels".format(index))
    if np.issubdtype(image.dtype, np.floating) and image.size \
            and image.max() <= 1.0:
        raise ValueError(
            "detect(): image {} is float with values in [0, 1]; pass "
            "pixel values in 0..255 (e.g. uint8)".format(index))


def image_list(images, channels):
    """detect()'s images as a list: a list, or an [N, H, W, C] array.

    One [H, W, channels] image alone is refused with a ValueError (iterating
    it would give H images of one row each).
    """
    if isinstance(images, np.ndarray) and images.ndim == 3 \
            and images.shape[-1] == channels:
        raise ValueError(
            "detect() takes a list of images (or an [N, H, W, C] array); "
            "got one image of shape {}: pass detect([image])".format(
                images.shape))
    return list(images)


def mold_inputs(images, config):
    """Resizes and normalizes images for the network.

    images: list of [H, W, C] images (uint8, or float in 0..255).
    Returns molded_images [N, h, w, C] float32, image_metas [N, META]
    float32, windows [N, (y1, x1, y2, x2)] pixels (the image inside the
    padded frame).
    """
    molded_images, image_metas, windows = [], [], []
    for index, image in enumerate(images):
        image = check_detect_image(image, index, config.IMAGE_CHANNEL_COUNT)
        molded_image, window, scale, _, _ = resize_image_for_config(
            image, config)
        molded_image = mold_image(molded_image, config)
        image_meta = compose_image_meta(
            0, image.shape, molded_image.shape, window, scale,
            np.zeros([config.NUM_CLASSES], dtype=np.int32))
        molded_images.append(molded_image)
        windows.append(window)
        image_metas.append(image_meta)
    return (np.stack(molded_images).astype(np.float32),
            np.stack(image_metas).astype(np.float32), np.stack(windows))


def common_shape(molded_images):
    """The shape [h, w, C] of every molded image of a batch; ValueError when
    they differ (one batch runs with one set of anchors)."""
    image_shape = molded_images[0].shape
    if any(image.shape != image_shape for image in molded_images[1:]):
        raise ValueError(
            "After resizing, images must have the same size; use "
            "IMAGE_RESIZE_MODE 'square' or detect them one by one.")
    return image_shape


def batch_anchors(anchors, count):
    """One image's anchors [A, 4] for a batch: [count, A, 4], contiguous."""
    return np.ascontiguousarray(np.broadcast_to(anchors,
                                                (count,) + anchors.shape))


def upload_anchors(anchors):
    """anchors (a numpy array) as a float32 tensor on TensorFlow's default
    device: a GPU's memory where one runs the model (tf.identity copies
    the host constant there), so that calls reuse it instead of sending
    it again."""
    return tf.identity(tf.constant(anchors, tf.float32))


class DeviceAnchors:
    """The anchors of a batch [count, A, (y1, x1, y2, x2)] normalized, as
    a tensor on the device, made once per (molded height, width, count):
    detect() sends only the images and their metas after the first call
    of a shape.

    anchors_for_shape: image_shape -> one image's anchors [A, 4] (numpy),
        e.g. MaskRCNN.get_anchors.
    """

    def __init__(self, anchors_for_shape):
        self._anchors_for_shape = anchors_for_shape
        self._tensors = {}

    def __call__(self, image_shape, count):
        key = (int(image_shape[0]), int(image_shape[1]), int(count))
        if key not in self._tensors:
            self._tensors[key] = upload_anchors(batch_anchors(
                self._anchors_for_shape(image_shape), count))
        return self._tensors[key]


def pad_to_batch(molded_images, image_metas, batch_size):
    """Fills a short last batch up to batch_size by repeating its first
    image. molded_images: [n, h, w, C]; image_metas: [n, META]."""
    pad = batch_size - len(molded_images)
    if pad <= 0:
        return molded_images, image_metas
    return (np.concatenate([molded_images,
                            np.repeat(molded_images[:1], pad, axis=0)]),
            np.concatenate([image_metas,
                            np.repeat(image_metas[:1], pad, axis=0)]))


def build_detect_fn(keras_model):
    """tf.function of the inference graph split in two around the mask
    head, so that the head runs only on the real detections.

    keras_model: the inference-mode Keras model of MaskRCNN.
    The function takes (images [B, h, w, C] molded, metas [B, META],
    anchors [B, A, 4] normalized) and returns detections
    [B, DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id, score)]
    normalized, and the mask probabilities of each detection's own class
    [B, n, mask_h, mask_w], n being the most real detections of any image
    of the batch (at least 1).
    """
    def output(name):
        return keras_model.get_layer(name).output

    feature_maps = [output(name) for name in layer_names.MRCNN_FEATURE_MAPS]
    detection_model = keras.Model(
        keras_model.inputs, [output(layer_names.DETECTIONS)] + feature_maps)
    mask_model = keras.Model(
        [output(layer_names.DETECTION_BOXES), keras_model.inputs[1]]
        + feature_maps, output(layer_names.MRCNN_MASK))

    @tf.function(reduce_retracing=True, jit_compile=False)
    def detect_fn(images, metas, anchors):
        detections, *maps = detection_model([images, metas, anchors],
                                            training=False)
        detections = tf.cast(detections, tf.float32)
        class_ids = tf.cast(detections[..., 4], tf.int32)
        # Real detections come first, then zero rows (class 0). At
        # least one row keeps the mask head's shapes non-empty.
        count = tf.maximum(tf.reduce_max(tf.reduce_sum(
            tf.cast(class_ids > 0, tf.int32), axis=1)), 1)
        masks = mask_model([detections[:, :count, :4], metas] + maps,
                           training=False)
        # [B, n, h, w, classes] -> [B, n, h, w] of each row's class.
        masks = tf.gather(tf.cast(masks, tf.float32),
                          class_ids[:, :count], axis=4, batch_dims=2)
        return detections, masks
    return detect_fn


def normalized_anchors(config, image_shape):
    """Anchors [num_anchors, (y1, x1, y2, x2)] float32, normalized, for a
    molded image of image_shape [h, w, ...] pixels."""
    backbone_shapes = compute_backbone_shapes(config, image_shape)
    anchors = generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, backbone_shapes,
        config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    return norm_boxes(anchors, tuple(int(v) for v in image_shape[:2])
                            ).astype(np.float32)


def run_graph(model, images, outputs, image_metas=None):
    """MaskRCNN.run_graph without the logging: the named outputs of a
    sub-graph of model.keras_model (inference mode) on images.

    outputs: list of (name, tensor or layer name) pairs.
    images: raw images, or molded images when image_metas is given.
    Returns an OrderedDict name -> numpy array.
    """
    keras_model = model.keras_model
    outputs = OrderedDict(
        (name, keras_model.get_layer(t).output if isinstance(t, str) else t)
        for name, t in outputs)
    sub_model = keras.Model(keras_model.inputs, list(outputs.values()))
    if image_metas is None:
        molded_images, image_metas, _ = model.mold_inputs(images)
    else:
        molded_images = np.asarray(images, dtype=np.float32)
    if model.mode != "inference":
        raise RuntimeError(
            "run_graph() feeds images only; build the model in inference "
            "mode, or call keras_model on a batch from MaskRCNNDataset.")
    anchors = model.get_anchors(molded_images[0].shape)
    inputs = [molded_images, image_metas,
              np.broadcast_to(anchors, (len(molded_images),) + anchors.shape)]
    values = sub_model.predict(inputs, verbose=0)
    if not isinstance(values, (list, tuple)):
        values = [values]
    return OrderedDict((key, np.asarray(value))
                       for key, value in zip(outputs.keys(), values))
