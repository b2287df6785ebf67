"""Loading one training image: checks of the dataset's arrays, resizing,
augmentation and the ground truth of ``load_image_gt``.

Malformed ``load_image()`` / ``load_mask()`` output raises a ValueError
naming the image; odd but usable input (pixel ranges, huge images) is used
with one warning per image.
"""

import logging

import numpy as np

from mrcnn.structures.boxes import extract_bboxes
from mrcnn.structures.masks import minimize_mask
from mrcnn.structures.resizing import resize_mask
from mrcnn.structures import dropped
from mrcnn.structures.resizing import resize_image_for_config
from mrcnn.structures import instance_layers
from mrcnn.data.augment import (augment_image_and_layers,
                                augment_image_and_masks, layers_follow)
from mrcnn.data.meta import compose_image_meta

logger = logging.getLogger(__name__)

# Instances go through resizing and imgaug augmentation packed into label
# layers (mrcnn.structures.instance_layers), where imgaug moves them
# itself; False: one mask at a time, the original way (slower, same
# ground truth but for an affine warp's interpolation at the edges). For
# tests and comparisons: it is this process's setting, and worker
# processes of the feed start with the default.
PACK_INSTANCES = True
# ... from this many instances an image: below it, packing costs as much
# as it saves (the balloon set, 1-10 an image, breaks even at 4-10).
PACK_MIN_INSTANCES = 4


def describe_image(dataset, image_id):
    """'image 3 (path or reference)' for error messages and warnings."""
    reference = ""
    try:
        reference = dataset.image_reference(image_id) or ""
    except Exception:  # a broken override must not hide the real error
        pass
    if not reference:
        try:
            info = dataset.image_info[image_id]
            reference = info.get("path") or "{}.{}".format(
                info.get("source"), info.get("id"))
        except Exception:
            reference = ""
    return "image {}{}".format(
        image_id, " ({})".format(reference) if reference else "")


# Images with a side above this are accepted but warned about: every load
# decodes and resizes the whole picture (an 8000x8000 RGB image is 192 MB).
LARGE_IMAGE_SIDE = 8000
_warned_images = set()  # (message, image description) pairs warned about


def _checked_image(dataset, image_id, image, config):
    """Validates load_image() output; returns it as an array.

    image: [H, W, IMAGE_CHANNEL_COUNT], H and W >= 1, numeric, finite. Pixel
    values outside 0..255 (e.g. 16-bit data, or floats in [0, 1]) only warn:
    images of other channel counts may use their own MEAN_PIXEL scale.
    """
    image = np.asarray(image)
    channels = config.IMAGE_CHANNEL_COUNT
    if image.ndim != 3 or image.shape[-1] != channels \
            or min(image.shape[:2]) < 1:
        raise ValueError(
            "load_image() for {} returned an array of shape {}; expected "
            "[height, width, {}] (IMAGE_CHANNEL_COUNT)".format(
                describe_image(dataset, image_id), image.shape, channels))
    if image.dtype != np.uint8:
        _check_pixel_values(dataset, image_id, image)
    if max(image.shape[:2]) > LARGE_IMAGE_SIDE:
        _warn_large_image(describe_image(dataset, image_id), image.shape)
    return image


def _check_pixel_values(dataset, image_id, image):
    """Errors for pixels that cannot train, warnings for odd value ranges."""
    if image.dtype == bool or not np.issubdtype(image.dtype, np.number):
        raise ValueError("load_image() for {} returned {} pixels; expected "
                         "uint8 (or numbers in 0..255)".format(
                             describe_image(dataset, image_id), image.dtype))
    if np.issubdtype(image.dtype, np.floating) \
            and not np.all(np.isfinite(image)):
        raise ValueError("load_image() for {} returned NaN or infinite "
                         "pixels".format(describe_image(dataset, image_id)))
    low, high = image.min(), image.max()
    if low < 0 or high > 255 or (
            np.issubdtype(image.dtype, np.floating) and 0 < high <= 1):
        _warn_once("load_image() for %s returned %s pixels in %s..%s; "
                   "mold_image expects 0..255 (convert 16-bit or 0..1 "
                   "images to uint8)", describe_image(dataset, image_id),
                   image.dtype, low, high)


def _warn_once(message, description, *args):
    """logger.warning, once per (message, image description)."""
    if (message, description) in _warned_images:
        return
    _warned_images.add((message, description))
    logger.warning(message, description, *args)


def _warn_large_image(description, shape):
    _warn_once("%s is %dx%d pixels (more than %d a side): it is decoded "
               "and resized at every load, which is slow and memory "
               "hungry; downscale the file once", description, shape[0],
               shape[1], LARGE_IMAGE_SIDE)


def _checked_instances(dataset, image_id, image, mask, class_ids):
    """Validates load_mask() output against the image; returns (mask, ids).

    mask: [H, W, N] -> bool; class_ids: [N] -> int32. An image without
    instances may come with any empty mask (the base Dataset's is 0x0x0).
    """
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int32)
    mask = np.asarray(mask)
    if class_ids.size == 0 and mask.size == 0:
        return np.zeros(image.shape[:2] + (0,), dtype=bool), class_ids
    if mask.ndim != 3:
        raise ValueError(
            "load_mask() for {} returned a mask of shape {}; expected "
            "[height, width, instances]".format(
                describe_image(dataset, image_id), mask.shape))
    if mask.shape[-1] != class_ids.shape[0]:
        raise ValueError(
            "load_mask() for {} returned {} masks but {} class ids".format(
                describe_image(dataset, image_id), mask.shape[-1],
                class_ids.shape[0]))
    if mask.shape[:2] != image.shape[:2]:
        raise ValueError(
            "load_mask() for {} returned masks of size {}x{} but the image is "
            "{}x{}".format(describe_image(dataset, image_id), mask.shape[0],
                           mask.shape[1], image.shape[0], image.shape[1]))
    _check_class_ids(dataset, image_id, class_ids)
    return mask.astype(bool, copy=False), class_ids


def _check_class_ids(dataset, image_id, class_ids):
    """Class ids must be 1..num_classes-1 (negative: a crowd of that class);
    0 is the background and larger ids would index past the class heads."""
    num_classes = dataset.num_classes
    bad = class_ids[(class_ids == 0) | (np.abs(class_ids) >= num_classes)]
    if bad.size:
        raise ValueError(
            "load_mask() for {} returned class ids {} outside 1..{} (the "
            "dataset has {} classes, background included; 0 is the "
            "background)".format(describe_image(dataset, image_id),
                                 sorted(set(bad.tolist())), num_classes - 1,
                                 num_classes))


def load_image_gt(dataset, config, image_id, augment=False, augmentation=None,
                  use_mini_mask=False):
    """Loads and returns ground truth data for an image (image, mask, boxes).

    augment: (deprecated) random horizontal flips. Use augmentation instead.
    augmentation: optional imgaug augmenter, e.g. iaa.Fliplr(0.5) (the
        masks follow every augmenter that moves pixels; see
        mrcnn.data.augment), or an albumentations transform, e.g.
        A.Compose([A.HorizontalFlip()]).
    use_mini_mask: if True, masks are cropped to their boxes and resized to
        config.MINI_MASK_SHAPE.

    Returns:
    image: [height, width, 3]
    image_meta: [12 + NUM_CLASSES] see compose_image_meta().
    class_ids: [instance_count] int32 class IDs
    bbox: [instance_count, (y1, x1, y2, x2)] int32 pixel boxes
    mask: [height, width, instance_count] bool, or
        [MINI_MASK_SHAPE + (instance_count,)] with use_mini_mask.
    Instances whose mask is empty (from load_mask, after resizing or after
    augmentation) are dropped, with a warning naming the image the first
    time per cause (mrcnn.structures.dropped).
    Raises ValueError naming the image when load_image() or load_mask()
    return malformed arrays (wrong shape or channel count, NaN pixels, mask
    and class id counts that differ, class ids outside 1..NUM_CLASSES-1).
    Images with a side over LARGE_IMAGE_SIDE pixels are used, with a warning.
    """
    image = _checked_image(dataset, image_id, dataset.load_image(image_id),
                           config)
    mask, class_ids = dataset.load_mask(image_id)
    mask, class_ids = _checked_instances(dataset, image_id, image, mask,
                                         class_ids)
    mask, class_ids = dropped.drop_empty(dataset, image_id, mask, class_ids,
                                         "empty_in_load_mask")
    original_shape = image.shape
    try:
        # OpenCV's resize, within one grey level of detection's
        # scikit-image resize and some 20 times faster.
        image, window, scale, padding, crop = resize_image_for_config(
            image, config, fast=True)
    except ValueError as error:
        raise ValueError("{}: {}".format(describe_image(dataset, image_id),
                                         error)) from error
    resized = scale != 1 or crop is not None or np.any(padding)
    resizing = (scale, padding, crop) if resized else None
    if augment:
        logger.warning("'augment' is deprecated. Use 'augmentation' instead.")
    flip = bool(augment and np.random.randint(0, 2))
    if PACK_INSTANCES and mask.shape[-1] >= PACK_MIN_INSTANCES and (
            not augmentation or layers_follow(augmentation)):
        image, class_ids, bbox, mask = _instances_as_layers(
            dataset, image_id, image, mask, class_ids, resizing, flip,
            augmentation, use_mini_mask and config.MINI_MASK_SHAPE)
    else:
        image, class_ids, bbox, mask = _instances_as_masks(
            dataset, image_id, image, mask, class_ids, resizing, flip,
            augmentation)
        if use_mini_mask:
            mask = minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)

    # Different datasets have different classes; mark the ones of the
    # image's source as active.
    active_class_ids = np.zeros([dataset.num_classes], dtype=np.int32)
    source = dataset.image_info[image_id]["source"]
    active_class_ids[dataset.source_class_ids[source]] = 1

    image_meta = compose_image_meta(image_id, original_shape, image.shape,
                                    window, scale, active_class_ids)
    return image, image_meta, class_ids, bbox, mask


def _instances_as_masks(dataset, image_id, image, mask, class_ids, resizing,
                        flip, augmentation):
    """Resizes (resizing: (scale, padding, crop) or None), flips and
    augments the image and its [H, W, N] masks one instance at a time.
    Returns (image, class_ids, bbox, mask [H, W, N'])."""
    if resizing is not None:
        mask = resize_mask(mask, *resizing)
        mask, class_ids = dropped.drop_empty(dataset, image_id, mask,
                                             class_ids, "empty_after_resize")
    if flip:
        image, mask = np.fliplr(image), np.fliplr(mask)
    if augmentation:
        image, mask = augment_image_and_masks(
            augmentation, image, mask, describe_image(dataset, image_id))
        mask, class_ids = dropped.drop_empty(
            dataset, image_id, mask, class_ids, "empty_after_augmentation")
    return image, class_ids, extract_bboxes(mask), mask


def _instances_as_layers(dataset, image_id, image, mask, class_ids,
                         resizing, flip, augmentation, mini_shape):
    """_instances_as_masks, then minimize_mask where mini_shape is given,
    with the instances packed into label layers
    (mrcnn.structures.instance_layers): one resize and one warp for all of
    them, their boxes in one pass. Returns (image, class_ids, bbox, mask
    [H, W, N'] or mini masks [mini_height, mini_width, N'])."""
    if resizing is not None and resizing[0] < 1:
        # Shrinking: the masks cost less to pack at the model's size.
        mask = resize_mask(mask, *resizing)
        mask, class_ids = dropped.drop_empty(dataset, image_id, mask,
                                             class_ids, "empty_after_resize")
        resizing = None
    layers, layer_of = instance_layers.pack(mask)
    alive, boxes = np.ones(len(class_ids), bool), None
    if resizing is not None:
        layers = resize_mask(layers, *resizing)
        alive, boxes = _still_present(dataset, image_id, layers, layer_of,
                                      alive, "empty_after_resize")
    if flip:
        image, layers = np.fliplr(image), np.fliplr(layers)
    if augmentation:
        image, layers = augment_image_and_layers(
            augmentation, image, layers, describe_image(dataset, image_id))
        alive, boxes = _still_present(dataset, image_id, layers, layer_of,
                                      alive, "empty_after_augmentation")
    elif boxes is None or flip:  # none found yet, or the flip moved them
        boxes = instance_layers.boxes_of(layers, layer_of)[0]
    if mini_shape:
        mask = instance_layers.minimize(layers, layer_of, boxes, alive,
                                        mini_shape)
    else:
        mask = instance_layers.unpack(layers, layer_of, boxes, alive)
    return image, class_ids[alive], boxes[alive], mask


def _still_present(dataset, image_id, layers, layer_of, alive, cause):
    """(alive [N] without the instances that have no pixel left in layers,
    their boxes [N, 4]); those are reported as dropped for cause (as
    dropped.drop_empty)."""
    boxes, present = instance_layers.boxes_of(layers, layer_of)
    dropped.report(dataset, image_id, cause, int((alive & ~present).sum()),
                   int(alive.sum()))
    return alive & present, boxes
