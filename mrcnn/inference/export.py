"""SavedModel export: uint8 images in, detections out, no Python needed.

    model = MaskRCNN(mode="inference", config=config, model_dir=MODEL_DIR)
    model.load_weights(model.find_last(), by_name=True)
    model.export("export/balloon")   # = export_saved_model(model, path)

    served = tf.saved_model.load("export/balloon")
    out = served.signatures["serving_default"](images=tf.constant(batch))

The ``serving_default`` signature takes ``images``: uint8
[N, H, W, IMAGE_CHANNEL_COUNT], any H and W, all images of one call the same
size. Inside the graph the images are molded as ``MaskRCNN.mold_inputs``
molds them (the resizing reproduces ``utils.resize_image``, skimage's
bilinear resize included, bit for bit), anchors are generated for the molded
size, the Keras inference model runs, and the detections are unmolded as
``MaskRCNN.detect`` does. Outputs, D = DETECTION_MAX_INSTANCES, detections
first and zero padding after them:

    num_detections  int32   [N]            detections of each image
    boxes           int32   [N, D, 4]      (y1, x1, y2, x2) pixels of the
                                           input image (detect()'s "rois")
    class_ids       int32   [N, D]
    scores          float32 [N, D]
    masks           uint8   [N, D, H, W]   0/1 at the input image's size
                                           (detect()'s "masks", transposed)
    mask_probs      float32 [N, D, h, w]   the mask head's probabilities for
                                           the detected class (MASK_SHAPE),
                                           spanning the box

``export_saved_model(..., full_masks=False)`` leaves out ``masks`` (they take
D * H * W bytes per image): paste ``mask_probs`` into ``boxes`` with
``utils.unmold_mask`` instead. ``results_from_serving`` turns the outputs
into detect()'s list of dicts.

Resize modes: "square", "pad64" and "none" ("none" needs H and W multiples
of 64). "crop" is a training-time augmentation and is not exported.
"""

import numpy as np
import tensorflow as tf

from mrcnn.constants import PYRAMID_STRIDE
from mrcnn.inference import paste_graph
from mrcnn.inference.resize_graph import resize_bilinear_like_skimage
from mrcnn.structures.masks import MASK_THRESHOLD
from mrcnn.structures.resizing import _resize_scale

EXPORTABLE_RESIZE_MODES = ("square", "pad64", "none")


############################################################
#  Molding: utils.resize_image + mold_image + compose_image_meta
############################################################

def resize_scale_graph(height, width, config):
    """The scale utils.resize_image picks for an image of this size.

    height, width: int32 scalars. Returns a float64 scalar, computed with
    the same float64 operations as the Python code, so that the rounded
    sizes agree exactly.
    """
    h = tf.cast(height, tf.float64)
    w = tf.cast(width, tf.float64)
    scale = tf.constant(1.0, tf.float64)
    if config.IMAGE_RESIZE_MODE == "none":
        return scale
    if config.IMAGE_MIN_DIM:
        scale = tf.maximum(scale, config.IMAGE_MIN_DIM / tf.minimum(h, w))
    if config.IMAGE_MIN_SCALE:
        scale = tf.maximum(scale, tf.constant(config.IMAGE_MIN_SCALE,
                                              tf.float64))
    if config.IMAGE_MAX_DIM and config.IMAGE_RESIZE_MODE == "square":
        image_max = tf.maximum(h, w)
        scale = tf.where(tf.round(image_max * scale) > config.IMAGE_MAX_DIM,
                         config.IMAGE_MAX_DIM / image_max, scale)
    return scale


def _static_scale(image_hw, config):
    """resize_image's scale for a static (height, width), None when the
    size is not static."""
    if None in tuple(image_hw) or config.IMAGE_RESIZE_MODE == "none":
        return None if None in tuple(image_hw) else 1
    return _resize_scale(image_hw[0], image_hw[1], config.IMAGE_MIN_DIM,
                         config.IMAGE_MAX_DIM, config.IMAGE_MIN_SCALE,
                         config.IMAGE_RESIZE_MODE)


def _padding_graph(size, target, mode):
    """(before, after) padding of one side, as utils.resize_image pads."""
    if mode == "square":
        total = target - size
    elif mode == "pad64":
        total = tf.math.floormod(-size, PYRAMID_STRIDE)
    else:
        total = tf.zeros_like(size)
    before = total // 2
    return before, total - before


def mold_images_graph(images, config):
    """MaskRCNN.mold_inputs in TensorFlow, for a batch of same-size images.

    images: uint8 [N, H, W, C].
    Returns molded_images float32 [N, h, w, C] (resized, padded, minus the
    mean pixel), image_metas float32 [N, IMAGE_META_SIZE] and window int32
    [4] (y1, x1, y2, x2), the image inside the molded frame.
    """
    mode = config.IMAGE_RESIZE_MODE
    if mode not in EXPORTABLE_RESIZE_MODES:
        raise ValueError(
            "export: IMAGE_RESIZE_MODE {!r} is not supported; use one of {}"
            .format(mode, EXPORTABLE_RESIZE_MODES))
    shape = tf.shape(images)
    count, height, width = shape[0], shape[1], shape[2]
    scale = resize_scale_graph(height, width, config)
    new_height = tf.cast(tf.round(tf.cast(height, tf.float64) * scale),
                         tf.int32)
    new_width = tf.cast(tf.round(tf.cast(width, tf.float64) * scale),
                        tf.int32)
    if _static_scale(images.shape[1:3], config) == 1:
        # A fixed input size that needs no resizing: no branch in the
        # graph (LiteRT has no float64 arithmetic for the resize).
        resized = images
    else:
        resized = tf.cond(
        tf.equal(scale, 1.0),
            lambda: images,
            # astype(uint8) after skimage's float resize truncates.
            lambda: tf.cast(resize_bilinear_like_skimage(
                images, new_height, new_width), tf.uint8))
    top, bottom = _padding_graph(new_height, config.IMAGE_MAX_DIM, mode)
    left, right = _padding_graph(new_width, config.IMAGE_MAX_DIM, mode)
    if mode == "square":
        tf.debugging.assert_non_negative(
            tf.minimum(top, left),
            message="export: resized image larger than IMAGE_MAX_DIM")
    padded = tf.pad(resized, [[0, 0], [top, bottom], [left, right], [0, 0]])
    molded_height = new_height + top + bottom
    molded_width = new_width + left + right
    if mode == "none":
        tf.debugging.assert_equal(
            tf.math.floormod(tf.stack([molded_height, molded_width]),
                             PYRAMID_STRIDE), 0,
            message="export: IMAGE_RESIZE_MODE 'none' needs image height "
                    "and width multiples of {}".format(PYRAMID_STRIDE))
    molded = tf.cast(padded, tf.float32) - tf.constant(
        np.asarray(config.MEAN_PIXEL, np.float32))
    window = tf.stack([top, left, top + new_height, left + new_width])
    channels = config.IMAGE_CHANNEL_COUNT
    meta = tf.concat([
        [0.0],  # image_id
        tf.cast([height, width, channels], tf.float32),
        tf.cast([molded_height, molded_width, channels], tf.float32),
        tf.cast(window, tf.float32),
        [tf.cast(scale, tf.float32)],
        tf.zeros([config.NUM_CLASSES], tf.float32),  # active_class_ids
    ], axis=0)
    metas = tf.tile(meta[tf.newaxis], [count, 1])
    return molded, metas, window


############################################################
#  Anchors
############################################################

def pyramid_anchors_graph(config, molded_height, molded_width):
    """MaskRCNN.get_anchors for a molded size given as int32 scalars.

    Returns float32 [num_anchors, (y1, x1, y2, x2)] normalized, computed in
    float64 with utils.generate_pyramid_anchors' operations.
    """
    if callable(config.BACKBONE):
        raise ValueError(
            "export: a callable BACKBONE has numpy COMPUTE_BACKBONE_SHAPE; "
            "only IMAGE_RESIZE_MODE 'square' (one molded size) exports")
    h = tf.cast(molded_height, tf.float64)
    w = tf.cast(molded_width, tf.float64)
    levels = []
    for scale, stride in zip(config.RPN_ANCHOR_SCALES,
                             config.BACKBONE_STRIDES):
        scales, ratios = np.meshgrid(np.array(scale),
                                     np.array(config.RPN_ANCHOR_RATIOS))
        ratios = ratios.flatten()
        sizes = np.stack([scales.flatten() / np.sqrt(ratios),
                          scales.flatten() * np.sqrt(ratios)], axis=1)
        feature_h = tf.cast(tf.math.ceil(h / stride), tf.int32)
        feature_w = tf.cast(tf.math.ceil(w / stride), tf.int32)
        shifts_y = tf.cast(tf.range(0, feature_h, config.RPN_ANCHOR_STRIDE)
                           * stride, tf.float64)
        shifts_x = tf.cast(tf.range(0, feature_w, config.RPN_ANCHOR_STRIDE)
                           * stride, tf.float64)
        centers_x, centers_y = tf.meshgrid(shifts_x, shifts_y)
        centers = tf.stack([tf.reshape(centers_y, [-1]),
                            tf.reshape(centers_x, [-1])], axis=1)
        centers = tf.repeat(centers, len(sizes), axis=0)
        level_sizes = tf.tile(tf.constant(sizes), [tf.shape(centers)[0]
                                                   // len(sizes), 1])
        levels.append(tf.concat([centers - 0.5 * level_sizes,
                                 centers + 0.5 * level_sizes], axis=1))
    anchors = tf.concat(levels, axis=0)
    norm_scale = tf.stack([h - 1, w - 1, h - 1, w - 1])
    shift = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float64)
    return tf.cast((anchors - shift) / norm_scale, tf.float32)


def _anchors_for(model, molded_height, molded_width):
    """Constant anchors when every molded image has one size ("square"),
    else anchors computed in the graph."""
    config = model.config
    if config.IMAGE_RESIZE_MODE == "square":
        size = config.IMAGE_MAX_DIM
        return tf.constant(model.get_anchors((size, size)))
    return pyramid_anchors_graph(config, molded_height, molded_width)


############################################################
#  Unmolding: postprocess.unmold_detections
############################################################

def _original_boxes_graph(boxes, window, molded_hw, original_hw,
                          pixel_dtype=tf.float64):
    """Normalized boxes in the molded frame to int32 pixels of the original
    image, with unmold_detections' float32 / float64 steps.

    boxes: float32 [..., 4]. window: int32 [4]. molded_hw, original_hw:
    int32 [2]. pixel_dtype: of the last product (float32 for LiteRT, which
    has no float64 arithmetic: a box edge may then round to the
    neighbouring pixel).
    """
    molded = tf.cast(molded_hw, tf.float64)
    norm_scale = tf.stack([molded[0] - 1, molded[1] - 1,
                           molded[0] - 1, molded[1] - 1])
    shift = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float64)
    window = tf.cast((tf.cast(window, tf.float64) - shift) / norm_scale,
                     tf.float32)
    wy1, wx1, wy2, wx2 = tf.unstack(window)
    boxes = (boxes - tf.stack([wy1, wx1, wy1, wx1])) / tf.stack(
        [wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    original = tf.cast(original_hw, tf.float64)
    denorm_scale = tf.stack([original[0] - 1, original[1] - 1,
                             original[0] - 1, original[1] - 1])
    return tf.cast(tf.round(
        tf.cast(boxes, pixel_dtype) * tf.cast(denorm_scale, pixel_dtype)
        + tf.cast(shift, pixel_dtype)), tf.int32)


def _valid_first(valid, *tensors):
    """Moves the valid rows of each [N, D, ...] tensor to the front (in
    order) and zeroes the rest."""
    order = tf.argsort(tf.cast(tf.logical_not(valid), tf.int32), axis=1,
                       stable=True)
    valid_sorted = tf.gather(valid, order, batch_dims=1)
    moved = []
    for t in tensors:
        t = tf.gather(t, order, batch_dims=1)
        keep = tf.reshape(valid_sorted, tf.concat(
            [tf.shape(valid_sorted), tf.ones([tf.rank(t) - 2], tf.int32)], 0))
        moved.append(tf.where(keep, t, tf.zeros_like(t)))
    return moved


def _paste_mask(mask, box, image_hw):
    """utils.unmold_mask in TensorFlow: the mask resized to its box with
    skimage's resize, thresholded at MASK_THRESHOLD, pasted into an image-size frame
    (the part of the box inside the image).

    mask: float32 [h, w]; box: int32 (y1, x1, y2, x2); image_hw: int32 [2].
    Returns bool [H, W].
    """
    y1, x1, y2, x2 = tf.unstack(box)
    top, left = tf.maximum(y1, 0), tf.maximum(x1, 0)
    bottom = tf.minimum(y2, image_hw[0])
    right = tf.minimum(x2, image_hw[1])

    def pasted():
        resized = resize_bilinear_like_skimage(mask[tf.newaxis], y2 - y1,
                                               x2 - x1)[0]
        # skimage returns float32 for a float32 mask: round, then compare.
        inside = tf.cast(resized, tf.float32) >= MASK_THRESHOLD
        inside = inside[top - y1:bottom - y1, left - x1:right - x1]
        return tf.pad(inside, [[top, image_hw[0] - bottom],
                               [left, image_hw[1] - right]])

    return tf.cond((bottom > top) & (right > left), pasted,
                   lambda: tf.zeros(image_hw, tf.bool))


def unmold_detections_graph(detections, mrcnn_mask, window, molded_hw,
                            original_hw, full_masks=True, portable=False):
    """postprocess.unmold_detections for a batch, in TensorFlow.

    detections: float32 [N, D, (y1, x1, y2, x2, class_id, score)]
        normalized, padding rows (class 0) after the detections.
    mrcnn_mask: float32 [N, D, h, w, num_classes].
    window: int32 [4] in the molded frame (the same for the whole batch).
    molded_hw, original_hw: int32 [2].
    portable: paste the masks with paste_graph.paste_mask (float32, no
    branches: ONNX and LiteRT) instead of skimage's resize bit for bit.
    Returns the dict of outputs described in the module docstring.
    """
    max_instances = tf.shape(detections)[1]
    class_ids = tf.cast(detections[..., 4], tf.int32)
    scores = detections[..., 5]
    boxes = _original_boxes_graph(
        detections[..., :4], window, molded_hw, original_hw,
        pixel_dtype=tf.float32 if portable else tf.float64)
    # Detections end at the first class 0 row; boxes with no area are
    # dropped (both as in unmold_detections).
    before_padding = tf.cumsum(tf.cast(tf.equal(class_ids, 0), tf.int32),
                               axis=1) == 0
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    valid = before_padding & (area > 0)
    mask_probs = tf.gather(tf.transpose(mrcnn_mask, [0, 1, 4, 2, 3]),
                           class_ids, axis=2, batch_dims=2)
    boxes, class_ids, scores, mask_probs = _valid_first(
        valid, boxes, class_ids, scores, mask_probs)
    outputs = {
        "num_detections": tf.reduce_sum(tf.cast(valid, tf.int32), axis=1),
        "boxes": boxes,
        "class_ids": class_ids,
        "scores": scores,
        "mask_probs": mask_probs,
    }
    if full_masks:
        paste = paste_graph.paste_mask if portable else _paste_mask
        # Static shapes where known: LiteRT's loops need them.
        static_hw = tf.get_static_value(original_hw)
        mask_shape = [-1 if size is None else size
                      for size in mask_probs.shape[2:]]
        flat = tf.map_fn(
            lambda args: paste(args[0], args[1], original_hw),
            (tf.reshape(mask_probs, [-1] + mask_shape),
             tf.reshape(boxes, [-1, 4])),
            fn_output_signature=tf.TensorSpec(
                [None, None] if static_hw is None else list(static_hw),
                tf.bool))
        outputs["masks"] = tf.cast(tf.reshape(flat, tf.concat(
            [[-1, max_instances], original_hw], 0)), tf.uint8)
    return outputs


############################################################
#  Export
############################################################

def serving_function(model, full_masks=True, portable=False,
                     image_shape=None):
    """A tf.function from a uint8 image batch to the outputs above.

    model: a MaskRCNN in inference mode.
    portable: masks pasted for ONNX and LiteRT (see unmold_detections_graph).
    image_shape: (height, width) of a fixed-size input of one image (the
        LiteRT export), or None: any batch of any size.
    """
    if model.mode != "inference":
        raise ValueError("export: build the MaskRCNN in inference mode, got "
                         "mode {!r}".format(model.mode))
    config = model.config
    if config.IMAGE_RESIZE_MODE not in EXPORTABLE_RESIZE_MODES:
        raise ValueError(
            "export: IMAGE_RESIZE_MODE {!r} is not supported; use one of {}"
            .format(config.IMAGE_RESIZE_MODE, EXPORTABLE_RESIZE_MODES))
    if config.IMAGE_RESIZE_MODE != "square" and callable(config.BACKBONE):
        raise ValueError(
            "export: a callable BACKBONE exports only with IMAGE_RESIZE_MODE "
            "'square' (its COMPUTE_BACKBONE_SHAPE is numpy code)")
    keras_model = model.keras_model
    batch_shape = [None, None, None] if image_shape is None else (
        [1] + [int(size) for size in image_shape])
    spec = tf.TensorSpec(batch_shape + [config.IMAGE_CHANNEL_COUNT],
                         tf.uint8, name="images")

    @tf.function(input_signature=[spec], jit_compile=False)
    def serve(images):
        molded, metas, window = mold_images_graph(images, config)
        molded_hw = tf.shape(molded)[1:3]
        anchors = _anchors_for(model, molded_hw[0], molded_hw[1])
        anchors = tf.tile(anchors[tf.newaxis], [tf.shape(images)[0], 1, 1])
        outputs = keras_model([molded, metas, anchors], training=False)
        detections = tf.cast(outputs[0], tf.float32)
        mrcnn_mask = tf.cast(outputs[3], tf.float32)
        image_hw = tf.shape(images)[1:3]
        if image_shape is not None:
            image_hw = tf.constant(batch_shape[1:], tf.int32)
        return unmold_detections_graph(detections, mrcnn_mask, window,
                                       molded_hw, image_hw,
                                       full_masks=full_masks,
                                       portable=portable)

    return serve


class _ServingModule(tf.Module):
    """Holds the Keras model (so its variables are saved) and the
    serving function."""

    def __init__(self, keras_model, serve):
        super().__init__(name="mask_rcnn_serving")
        self.keras_model = keras_model
        self.serve = serve


def export_saved_model(model, export_dir, full_masks=True):
    """Writes a SavedModel of `model` (a MaskRCNN in inference mode) with the
    ``serving_default`` signature described in the module docstring.

    full_masks: also output image-size masks (D * H * W bytes per image).
    Returns export_dir.
    """
    serve = serving_function(model, full_masks=full_masks)
    module = _ServingModule(model.keras_model, serve)
    tf.saved_model.save(
        module, str(export_dir),
        signatures={"serving_default": serve.get_concrete_function()})
    return export_dir


def results_from_serving(outputs):
    """The serving signature's outputs as detect()'s list of dicts.

    outputs: dict of tensors or arrays from ``serving_default``.
    Returns one dict per image: rois [n, 4] int32, class_ids [n] int32,
    scores [n] float32, masks [H, W, n] bool (only when the export has
    full masks).
    """
    outputs = {k: np.asarray(v) for k, v in outputs.items()}
    results = []
    for i, count in enumerate(outputs["num_detections"]):
        result = {"rois": outputs["boxes"][i, :count],
                  "class_ids": outputs["class_ids"][i, :count],
                  "scores": outputs["scores"][i, :count]}
        if "masks" in outputs:
            result["masks"] = np.transpose(outputs["masks"][i, :count],
                                           [1, 2, 0]).astype(bool)
        results.append(result)
    return results
