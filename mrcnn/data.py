"""Training data: image loading, target building and the Keras data feed.

The functions keep the names, arguments and semantics of the data half of
matterport's ``mrcnn/model.py`` (``mrcnn.model`` re-exports them):

* ``compose_image_meta`` / ``parse_image_meta``, ``mold_image`` /
  ``unmold_image``: the image meta vector and pixel normalization.
* ``load_image_gt``: image, meta, class ids, boxes and masks of one dataset
  image, resized (and optionally augmented with imgaug) for training.
* ``build_rpn_targets``: anchor labels and box deltas for the RPN.
* ``build_detection_targets`` / ``generate_random_rois``: numpy twins of the
  detection-target layer, for debugging with random ROIs.
* ``data_generator``: matterport's Python generator.
* ``MaskRCNNDataset`` (alias ``DataSequence``): a thread-safe
  ``keras.utils.PyDataset`` giving one dict of model inputs per batch,
  reproducible per (epoch, batch index) given a seed.

``build_rpn_targets`` gives exactly the labels of matterport's dense
anchors x boxes IoU matrix without computing that matrix: anchors are
grouped by shape and laid out on grids, so only the anchors that can reach
the IoU thresholds of a box are looked at (see ``_AnchorIndex``).
"""

import logging
import math
import threading

import numpy as np
import keras

from mrcnn import dropped, utils

logger = logging.getLogger(__name__)

# An anchor touching a crowd box from this IoU is never a negative. The
# positive and negative thresholds are Config.RPN_POSITIVE_IOU and
# RPN_NEGATIVE_IOU.
RPN_CROWD_IOU = 0.001

# Augmenters that are safe to apply to masks: geometric ones that move mask
# pixels with the image. Others (color, blur, noise) touch the image only.
# Subclasses count too (imgaug's Rotate is an Affine, Crop a CropAndPad).
MASK_AUGMENTERS = ["Sequential", "SomeOf", "OneOf", "Sometimes",
                   "Fliplr", "Flipud", "CropAndPad",
                   "Affine", "PiecewiseAffine"]


############################################################
#  Image meta and pixel normalization
############################################################

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


############################################################
#  Loading one image
############################################################

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


def _is_mask_augmenter(augmenter):
    """True if augmenter (or a class it derives from) is in MASK_AUGMENTERS."""
    return any(cls.__name__ in MASK_AUGMENTERS
               for cls in type(augmenter).__mro__)


def _mask_hook(images, augmenter, parents, default):
    """imgaug activator: only mask-safe augmenters run on the masks."""
    return _is_mask_augmenter(augmenter)


def augment_image_and_masks(augmentation, image, mask, description="image"):
    """Applies an imgaug augmenter to an image and, where safe, its masks.

    The augmenter is made deterministic so the masks get the same geometric
    transform as the image; only MASK_AUGMENTERS run on the masks.
    image: [H, W, C] uint8; mask: [H, W, N] bool.
    Returns (image, mask) with unchanged shapes.
    """
    from mrcnn._imgaug_compat import import_imgaug
    imgaug = import_imgaug()
    det = augmentation.to_deterministic()
    new_image = det.augment_image(image)
    # imgaug has no bool support, hence the uint8 round trip.
    hooks = imgaug.HooksImages(activator=_mask_hook)
    new_mask = det.augment_image(mask.astype(np.uint8), hooks=hooks)
    if new_image.shape != image.shape or new_mask.shape != mask.shape:
        raise ValueError(
            "Augmentation changed the size of {} from {} to {} (masks {} to "
            "{}); use augmenters that keep the image size".format(
                description, image.shape, new_image.shape, mask.shape,
                new_mask.shape))
    return new_image, new_mask.astype(bool)


def load_image_gt(dataset, config, image_id, augment=False, augmentation=None,
                  use_mini_mask=False):
    """Loads and returns ground truth data for an image (image, mask, boxes).

    augment: (deprecated) random horizontal flips. Use augmentation instead.
    augmentation: optional imgaug augmenter, e.g. iaa.Fliplr(0.5). Only
        MASK_AUGMENTERS are applied to the masks.
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
    time per cause (mrcnn.dropped).
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
        image, window, scale, padding, crop = utils.resize_image(
            image,
            min_dim=config.IMAGE_MIN_DIM,
            min_scale=config.IMAGE_MIN_SCALE,
            max_dim=config.IMAGE_MAX_DIM,
            mode=config.IMAGE_RESIZE_MODE)
    except ValueError as error:
        raise ValueError("{}: {}".format(describe_image(dataset, image_id),
                                         error)) from error
    if scale != 1 or crop is not None or np.any(padding):
        mask = utils.resize_mask(mask, scale, padding, crop)
        mask, class_ids = dropped.drop_empty(dataset, image_id, mask,
                                             class_ids, "empty_after_resize")

    if augment:
        logger.warning("'augment' is deprecated. Use 'augmentation' instead.")
        if np.random.randint(0, 2):
            image = np.fliplr(image)
            mask = np.fliplr(mask)

    if augmentation:
        image, mask = augment_image_and_masks(
            augmentation, image, mask, describe_image(dataset, image_id))
        mask, class_ids = dropped.drop_empty(
            dataset, image_id, mask, class_ids, "empty_after_augmentation")

    bbox = utils.extract_bboxes(mask)

    # Different datasets have different classes; mark the ones of the
    # image's source as active.
    active_class_ids = np.zeros([dataset.num_classes], dtype=np.int32)
    source = dataset.image_info[image_id]["source"]
    active_class_ids[dataset.source_class_ids[source]] = 1

    if use_mini_mask:
        mask = utils.minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)

    image_meta = compose_image_meta(image_id, original_shape, image.shape,
                                    window, scale, active_class_ids)
    return image, image_meta, class_ids, bbox, mask


############################################################
#  RPN targets
############################################################

# Bounds on IoU are exact maths; this slack absorbs float rounding so a
# group of anchors is never skipped by a rounding error.
_IOU_SLACK = 1e-9
# Pixels added around a box when looking for anchors that touch it, for the
# same reason. Anchors found this way but not overlapping get IoU 0.
_COORD_MARGIN = 1e-3
# Beyond this many distinct anchor shapes the index is not worth it.
_MAX_ANCHOR_GROUPS = 512


def _ragged_arange(counts):
    """[0..c0), [0..c1), ... concatenated, for counts [c0, c1, ...]."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total) - starts


def _areas(boxes):
    """[N, (y1, x1, y2, x2)] -> [N] areas; negative sizes count as 0."""
    return (np.maximum(boxes[:, 2] - boxes[:, 0], 0)
            * np.maximum(boxes[:, 3] - boxes[:, 1], 0))


def _pairwise_iou(boxes_a, area_a, boxes_b, area_b):
    """IoU of row i of boxes_a with row i of boxes_b ([P, 4] each -> [P]).

    Same operations as utils.compute_overlaps, so values are bit-identical.
    """
    height = (np.minimum(boxes_a[:, 2], boxes_b[:, 2])
              - np.maximum(boxes_a[:, 0], boxes_b[:, 0]))
    width = (np.minimum(boxes_a[:, 3], boxes_b[:, 3])
             - np.maximum(boxes_a[:, 1], boxes_b[:, 1]))
    intersection = np.maximum(height, 0) * np.maximum(width, 0)
    union = area_a + area_b - intersection
    # union is 0 only when both boxes are empty; their IoU is 0.
    return intersection / np.maximum(union, np.finfo(np.float64).tiny)


class _AnchorIndex(object):
    """Anchors grouped by shape, each group sorted by (y1, x1).

    Anchors of one shape from one pyramid level form a grid; for those the
    anchors that can touch a box are a rectangle of grid rows x columns,
    found with two binary searches. Groups that are not grids fall back to
    a binary search on y1 and a filter on x1. Either way the exact IoU is
    computed only for anchors that touch the box, and for a group only when
    the best IoU any anchor of that shape could reach is high enough.
    """

    def __init__(self, anchors):
        anchors = np.asarray(anchors, dtype=np.float64)
        if anchors.ndim != 2 or anchors.shape[1] != 4:
            raise ValueError("anchors must be [num_anchors, (y1, x1, y2, x2)]"
                             ", got shape {}".format(anchors.shape))
        self.num_anchors = anchors.shape[0]
        heights = anchors[:, 2] - anchors[:, 0]
        widths = anchors[:, 3] - anchors[:, 1]
        # Anchors of one shape differ in size by float rounding only
        # (centre +/- half size); rounding the key keeps them together.
        height_key = np.round(heights, 6)
        width_key = np.round(widths, 6)
        self.order = np.lexsort((anchors[:, 1], anchors[:, 0],
                                 width_key, height_key))
        self.boxes = anchors[self.order]
        self.areas = _areas(self.boxes)
        sorted_h, sorted_w = height_key[self.order], width_key[self.order]
        cuts = np.flatnonzero((sorted_h[1:] != sorted_h[:-1])
                              | (sorted_w[1:] != sorted_w[:-1])) + 1
        edges = np.concatenate([[0], cuts, [self.num_anchors]])
        if len(edges) - 1 > _MAX_ANCHOR_GROUPS:
            self.groups = None  # irregular anchors: use the dense matrix
            return
        heights, widths = heights[self.order], widths[self.order]
        self.groups = [self._make_group(int(start), int(stop), heights, widths)
                       for start, stop in zip(edges[:-1], edges[1:])]
        self.group_heights = np.array([g["height"] for g in self.groups])
        self.group_widths = np.array([g["width"] for g in self.groups])

    def _make_group(self, start, stop, heights, widths):
        """Shape, extent and (if regular) grid layout of one group."""
        group = {"start": start, "stop": stop,
                 # The largest size, so the search window is never too small.
                 "height": float(heights[start:stop].max()),
                 "width": float(widths[start:stop].max()),
                 "rows": None, "cols": None}
        y1 = self.boxes[start:stop, 0]
        x1 = self.boxes[start:stop, 1]
        num_rows = 1 + int(np.count_nonzero(np.diff(y1)))
        count = stop - start
        if count % num_rows:
            return group
        num_cols = count // num_rows
        grid_y = y1.reshape(num_rows, num_cols)
        grid_x = x1.reshape(num_rows, num_cols)
        rows, cols = grid_y[:, 0], grid_x[0]
        if (np.all(grid_y == rows[:, None]) and np.all(grid_x == cols)
                and np.all(np.diff(cols) > 0)):
            group["rows"], group["cols"] = rows.copy(), cols.copy()
        return group

    def iou_bounds(self, boxes):
        """[groups, boxes] best IoU any anchor of each group can have."""
        box_h = (boxes[:, 2] - boxes[:, 0])[None, :]
        box_w = (boxes[:, 3] - boxes[:, 1])[None, :]
        anchor_h = self.group_heights[:, None]
        anchor_w = self.group_widths[:, None]
        # Best case: the smaller box sits inside the larger in each axis.
        inter = (np.minimum(np.maximum(box_h, 0), anchor_h)
                 * np.minimum(np.maximum(box_w, 0), anchor_w))
        union = np.maximum(box_h, 0) * np.maximum(box_w, 0) \
            + anchor_h * anchor_w - inter
        return inter / np.maximum(union, np.finfo(np.float64).tiny)

    def _touching(self, group, boxes):
        """Sorted positions and box numbers of anchors of group near boxes.

        boxes: [K, 4]. Returns (positions [P] into self.boxes, box [P]).
        """
        start = group["start"]
        low_y = boxes[:, 0] - group["height"] - _COORD_MARGIN
        high_y = boxes[:, 2] + _COORD_MARGIN
        low_x = boxes[:, 1] - group["width"] - _COORD_MARGIN
        high_x = boxes[:, 3] + _COORD_MARGIN
        if group["rows"] is not None:
            rows, cols = group["rows"], group["cols"]
            r0 = np.searchsorted(rows, low_y, side="right")
            r1 = np.searchsorted(rows, high_y, side="left")
            c0 = np.searchsorted(cols, low_x, side="right")
            c1 = np.searchsorted(cols, high_x, side="left")
            num_r = np.maximum(r1 - r0, 0)
            num_c = np.maximum(c1 - c0, 0)
            counts = num_r * num_c
            box = np.repeat(np.arange(len(boxes)), counts)
            k = _ragged_arange(counts)
            width = num_c[box]
            positions = (start + (r0[box] + k // width) * len(cols)
                         + c0[box] + k % width)
            return positions, box
        y1 = self.boxes[start:group["stop"], 0]
        lo = np.searchsorted(y1, low_y, side="right")
        hi = np.searchsorted(y1, high_y, side="left")
        counts = np.maximum(hi - lo, 0)
        box = np.repeat(np.arange(len(boxes)), counts)
        positions = start + lo[box] + _ragged_arange(counts)
        x1 = self.boxes[positions, 1]
        near = (x1 > low_x[box]) & (x1 < high_x[box])
        return positions[near], box[near]

    def overlaps(self, boxes, wanted):
        """Exact IoU of boxes with the anchors of the wanted groups.

        boxes: [K, (y1, x1, y2, x2)] float64.
        wanted: [groups, K] bool, which (group, box) pairs to look at.
        Returns (positions [P] into the sorted anchors, box [P], iou [P]),
        covering every anchor of the wanted pairs with IoU > 0.
        """
        box_areas = _areas(boxes)
        all_positions, all_boxes = [], []
        for g in np.flatnonzero(wanted.any(axis=1)):
            picked = np.flatnonzero(wanted[g])
            positions, box = self._touching(self.groups[g], boxes[picked])
            all_positions.append(positions)
            all_boxes.append(picked[box])
        if not all_positions:
            empty = np.zeros([0], dtype=np.int64)
            return empty, empty, np.zeros([0])
        positions = np.concatenate(all_positions)
        box = np.concatenate(all_boxes)
        iou = _pairwise_iou(self.boxes[positions], self.areas[positions],
                            boxes[box], box_areas[box])
        return positions, box, iou


def _match_anchors_dense(anchors, gt_boxes, crowd_boxes, positive_iou,
                         negative_iou):
    """Matterport's labelling from the full IoU matrix (irregular anchors).

    Returns int8 [num_anchors]: 1 positive, -1 negative, 0 neutral, before
    subsampling.
    """
    labels = np.full([anchors.shape[0]], -1, dtype=np.int8)
    if len(crowd_boxes):
        crowd_iou = utils.compute_overlaps(anchors, crowd_boxes).max(axis=1)
        labels[crowd_iou >= RPN_CROWD_IOU] = 0
    if not len(gt_boxes):
        return labels
    overlaps = utils.compute_overlaps(anchors, gt_boxes)
    anchor_iou_max = overlaps.max(axis=1)
    labels[anchor_iou_max >= negative_iou] = 0
    # Every GT box gets its best anchors (all of them when tied).
    labels[np.any(overlaps == overlaps.max(axis=0), axis=1)] = 1
    labels[anchor_iou_max >= positive_iou] = 1
    return labels


def _find_best_anchors(index, boxes, bounds, done, best, found):
    """Completes the search for each box's best anchors (their IoU may be
    below the negative threshold).

    A box's best anchor may lie in a group not looked at yet. Groups are
    visited per box in decreasing order of their IoU bound until no unseen
    group can reach (or tie) the best IoU found.
    bounds, done: [groups, boxes]; done is updated. best: [boxes], updated.
    found: [positions, box, iou] pairs so far.
    Returns the pairs with the new ones appended.
    """
    found = [found]
    while True:
        remaining = np.where(done, -1.0, bounds)
        top_group = np.argmax(remaining, axis=0)
        top_bound = remaining[top_group, np.arange(len(boxes))]
        needy = np.flatnonzero(top_bound >= best - _IOU_SLACK)
        if len(needy) == 0:
            break
        wanted = np.zeros_like(done)
        wanted[top_group[needy], needy] = True
        done |= wanted
        positions, box, iou = index.overlaps(boxes, wanted)
        np.maximum.at(best, box, iou)
        found.append([positions, box, iou])
    return [np.concatenate(parts) for parts in zip(*found)]


def _match_anchors(index, anchors, gt_boxes, crowd_boxes, positive_iou,
                   negative_iou):
    """RPN anchor labels before subsampling, as matterport defines them.

    1: IoU >= positive_iou (0.7 by default) with a GT box, or the best anchor of a GT
       box (all tied best anchors; when a box overlaps no anchor at all,
       every anchor ties at IoU 0 and all become positive, as in matterport).
    -1: IoU < negative_iou (0.3 by default) with every GT box and < 0.001 with every
       crowd box.
    0: the rest.
    index: _AnchorIndex of anchors. gt_boxes, crowd_boxes: [K, 4] float64.
    Returns int8 [num_anchors].
    """
    if index.groups is None:
        return _match_anchors_dense(anchors, gt_boxes, crowd_boxes,
                                    positive_iou, negative_iou)
    labels = np.full([index.num_anchors], -1, dtype=np.int8)
    if len(crowd_boxes):
        bounds = index.iou_bounds(crowd_boxes)
        positions, _, iou = index.overlaps(
            crowd_boxes, bounds >= RPN_CROWD_IOU - _IOU_SLACK)
        labels[index.order[positions[iou >= RPN_CROWD_IOU]]] = 0
    if not len(gt_boxes):
        return labels

    # The groups that can reach the negative threshold decide the negatives
    # and positives by threshold.
    bounds = index.iou_bounds(gt_boxes)
    done = bounds >= negative_iou - _IOU_SLACK
    positions, box, iou = index.overlaps(gt_boxes, done)
    best = np.zeros([len(gt_boxes)])
    np.maximum.at(best, box, iou)
    positions, box, iou = _find_best_anchors(index, gt_boxes, bounds, done,
                                             best, [positions, box, iou])

    labels[index.order[positions[iou >= negative_iou]]] = 0
    positive = (iou >= positive_iou) | (iou == best[box])
    labels[index.order[positions[positive]]] = 1
    if np.any(best == 0):
        labels[:] = 1  # a box touching no anchor ties with all of them
    return labels


_INDEX_CACHE = []  # [(anchors object, snapshot copy, _AnchorIndex)]
_INDEX_CACHE_SIZE = 4
_INDEX_LOCK = threading.Lock()


def _cached_anchor_index(anchors):
    """The _AnchorIndex of anchors, built once per distinct anchors array.

    A cached index is reused when the same read-only array comes back, or
    when the content equals the snapshot taken at build time.
    """
    with _INDEX_LOCK:
        for source, snapshot, index in _INDEX_CACHE:
            if source is anchors and not anchors.flags.writeable \
                    and anchors.base is None:
                return index
            if snapshot.shape == anchors.shape \
                    and np.array_equal(snapshot, anchors):
                return index
        index = _AnchorIndex(anchors)
        _INDEX_CACHE.insert(0, (anchors, np.array(anchors, copy=True), index))
        del _INDEX_CACHE[_INDEX_CACHE_SIZE:]
        return index


def _as_generator(rng):
    """A numpy Generator: rng itself, or one seeded from np.random."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        # Seeded from the legacy global state so np.random.seed() still
        # makes runs repeatable, as in matterport.
        return np.random.default_rng(np.random.randint(0, 2 ** 31 - 1))
    return np.random.default_rng(rng)


def _rpn_targets(index, anchors, gt_class_ids, gt_boxes, config, rng):
    """build_rpn_targets with a prebuilt _AnchorIndex and a Generator."""
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if len(gt_class_ids) != len(gt_boxes):
        raise ValueError("build_rpn_targets: {} class ids but {} boxes".format(
            len(gt_class_ids), len(gt_boxes)))
    # Crowd boxes (negative class ids) are not trained on, but anchors that
    # touch them are not negatives either. As in matterport, when crowds are
    # present only positive class ids count as GT.
    crowd = gt_class_ids < 0
    if np.any(crowd):
        crowd_boxes = gt_boxes[crowd]
        gt_boxes = gt_boxes[gt_class_ids > 0]
    else:
        crowd_boxes = gt_boxes[:0]
    labels = _match_anchors(index, anchors, gt_boxes, crowd_boxes,
                            config.RPN_POSITIVE_IOU, config.RPN_NEGATIVE_IOU)

    # Subsample: at most half positives, the rest negatives.
    anchors_per_image = config.RPN_TRAIN_ANCHORS_PER_IMAGE
    positive_ids = np.flatnonzero(labels == 1)
    if len(positive_ids) > anchors_per_image // 2:
        positive_ids = np.sort(rng.choice(
            positive_ids, anchors_per_image // 2, replace=False))
    negative_ids = np.flatnonzero(labels == -1)
    negatives_wanted = anchors_per_image - len(positive_ids)
    if len(negative_ids) > negatives_wanted:
        negative_ids = rng.choice(negative_ids, negatives_wanted,
                                  replace=False)
    rpn_match = np.zeros([index.num_anchors], dtype=np.int32)
    rpn_match[positive_ids] = 1
    rpn_match[negative_ids] = -1

    # Deltas from each positive anchor to its best GT box (first on ties).
    rpn_bbox = np.zeros([anchors_per_image, 4], dtype=np.float32)
    if len(positive_ids):
        positive_anchors = np.asarray(anchors, dtype=np.float64)[positive_ids]
        best_gt = np.argmax(utils.compute_overlaps(positive_anchors, gt_boxes),
                            axis=1)
        deltas = utils.box_refinement(positive_anchors, gt_boxes[best_gt])
        rpn_bbox[:len(positive_ids)] = deltas / np.asarray(
            config.RPN_BBOX_STD_DEV, dtype=np.float32)
    return rpn_match, rpn_bbox


def build_rpn_targets(image_shape, anchors, gt_class_ids, gt_boxes, config,
                      rng=None):
    """Given the anchors and GT boxes, compute overlaps and identify positive
    anchors and deltas to refine them to match their corresponding GT boxes.

    image_shape: [height, width, channels] (unused; kept for the API).
    anchors: [num_anchors, (y1, x1, y2, x2)] pixels.
    gt_class_ids: [num_gt_boxes] Integer class IDs; negative ids are crowds.
    gt_boxes: [num_gt_boxes, (y1, x1, y2, x2)] pixels.
    rng: optional numpy Generator (or seed) for the subsampling; by default
        one seeded from np.random.

    Returns:
    rpn_match: [num_anchors] int32 matches between anchors and GT boxes.
               1 = positive anchor, -1 = negative anchor, 0 = neutral
    rpn_bbox: [RPN_TRAIN_ANCHORS_PER_IMAGE, (dy, dx, log(dh), log(dw))]
        float32 anchor bbox deltas of the positive anchors in anchor order,
        divided by RPN_BBOX_STD_DEV, zero padded.
    With no GT box at all every anchor is a negative candidate.
    """
    anchors = np.asarray(anchors)
    index = _cached_anchor_index(anchors)
    return _rpn_targets(index, anchors, gt_class_ids, gt_boxes, config,
                        _as_generator(rng))


############################################################
#  Detection targets (numpy, for debugging with random ROIs)
############################################################

def _random_spans(low, high, count, rng):
    """count sorted (start, end) integer pairs in [low, high) with start < end.

    Drawn as matterport does: two uniform values, redrawn when equal.
    """
    if high - low < 2:
        raise ValueError("cannot draw boxes of positive size in [{}, {})"
                         .format(low, high))
    spans = np.zeros([0, 2], dtype=np.int64)
    while len(spans) < count:
        draws = rng.integers(low, high, size=(2 * count, 2))
        draws = draws[draws[:, 0] != draws[:, 1]]
        spans = np.concatenate([spans, draws])
    return np.sort(spans[:count], axis=1)


def generate_random_rois(image_shape, count, gt_class_ids, gt_boxes,
                         rng=None):
    """Generates ROI proposals similar to what a region proposal network
    would generate.

    image_shape: [Height, Width, Depth]
    count: Number of ROIs to generate
    gt_class_ids: [N] Integer ground truth class IDs
    gt_boxes: [N, (y1, x1, y2, x2)] Ground truth boxes in pixels.
    rng: optional numpy Generator or seed (default: seeded from np.random).

    Returns: [count, (y1, x1, y2, x2)] int32 ROI boxes in pixels: 90% spread
    around the GT boxes (within one box size of each), the rest anywhere.
    """
    rng = _as_generator(rng)
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    height, width = int(image_shape[0]), int(image_shape[1])
    rois = np.zeros((count, 4), dtype=np.int32)
    rois_per_box = int(0.9 * count / gt_boxes.shape[0]) if len(gt_boxes) else 0
    for i, (y1, x1, y2, x2) in enumerate(gt_boxes.astype(np.int64)):
        h, w = y2 - y1, x2 - x1
        ys = _random_spans(max(y1 - h, 0), min(y2 + h, height), rois_per_box,
                           rng)
        xs = _random_spans(max(x1 - w, 0), min(x2 + w, width), rois_per_box,
                           rng)
        rois[rois_per_box * i:rois_per_box * (i + 1)] = np.stack(
            [ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]], axis=1)
    remaining = count - rois_per_box * gt_boxes.shape[0]
    if remaining > 0:
        ys = _random_spans(0, height, remaining, rng)
        xs = _random_spans(0, width, remaining, rng)
        rois[-remaining:] = np.stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]],
                                     axis=1)
    return rois


def _full_size_mask(mini_mask, box, image_hw):
    """A mini mask pasted back at its box in an image-size bool mask."""
    placeholder = np.zeros(tuple(int(d) for d in image_hw), dtype=bool)
    y1, x1, y2, x2 = (int(v) for v in box)
    placeholder[y1:y2, x1:x2] = np.round(
        utils.resize(mini_mask.astype(np.float32), (y2 - y1, x2 - x1))
    ).astype(bool)
    return placeholder


def build_detection_targets(rpn_rois, gt_class_ids, gt_boxes, gt_masks,
                            config, rng=None):
    """Generate targets for training Stage 2 classifier and mask heads.
    This is not used in normal training. It's useful for debugging or to
    train the Mask RCNN heads without using the RPN head.

    Inputs:
    rpn_rois: [N, (y1, x1, y2, x2)] proposal boxes in pixels.
    gt_class_ids: [instance count] int32 class IDs (0 entries are padding).
    gt_boxes: [instance count, (y1, x1, y2, x2)] int32 pixel boxes.
    gt_masks: [height, width, instance count] bool ground truth masks. Can
        be full size or mini-masks (config.USE_MINI_MASK).
    rng: optional numpy Generator or seed (default: seeded from np.random).

    Returns:
    rois: [TRAIN_ROIS_PER_IMAGE, (y1, x1, y2, x2)] pixels.
    class_ids: [TRAIN_ROIS_PER_IMAGE] int32 class IDs (0 for background).
    bboxes: [TRAIN_ROIS_PER_IMAGE, NUM_CLASSES, (dy, dx, log(dh), log(dw))]
        float32 class-specific refinements, divided by BBOX_STD_DEV.
    masks: [TRAIN_ROIS_PER_IMAGE, height, width, NUM_CLASSES] float32
        class-specific masks cropped to the ROI boxes, MASK_SHAPE in size.
    """
    rng = _as_generator(rng)
    rpn_rois = np.asarray(rpn_rois)
    gt_class_ids = np.asarray(gt_class_ids)
    gt_boxes = np.asarray(gt_boxes)
    gt_masks = np.asarray(gt_masks)
    if rpn_rois.shape[0] == 0:
        raise ValueError("build_detection_targets: no ROIs given")
    instance_ids = np.flatnonzero(gt_class_ids > 0)
    if len(instance_ids) == 0:
        raise ValueError("build_detection_targets: the image must contain "
                         "instances (all class ids are 0)")
    gt_class_ids = gt_class_ids[instance_ids].astype(np.int32)
    gt_boxes = gt_boxes[instance_ids].astype(np.int32)
    gt_masks = gt_masks[:, :, instance_ids].astype(bool)

    # Assign each ROI to the GT box it overlaps most.
    overlaps = utils.compute_overlaps(rpn_rois, gt_boxes)
    roi_gt_index = np.argmax(overlaps, axis=1)
    roi_iou_max = overlaps[np.arange(len(rpn_rois)), roi_gt_index]
    roi_gt_boxes = gt_boxes[roi_gt_index]
    roi_gt_class_ids = gt_class_ids[roi_gt_index]

    # Positive ROIs have IoU > 0.5, negatives < 0.5 (no hard mining).
    fg_ids = np.flatnonzero(roi_iou_max > 0.5)
    bg_ids = np.flatnonzero(roi_iou_max < 0.5)
    fg_roi_count = int(config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO)
    keep_fg_ids = fg_ids
    if len(fg_ids) > fg_roi_count:
        keep_fg_ids = rng.choice(fg_ids, fg_roi_count, replace=False)
    remaining = config.TRAIN_ROIS_PER_IMAGE - len(keep_fg_ids)
    keep_bg_ids = bg_ids
    if len(bg_ids) > remaining:
        keep_bg_ids = rng.choice(bg_ids, remaining, replace=False)
    keep = np.concatenate([keep_fg_ids, keep_bg_ids]).astype(np.int64)
    remaining = config.TRAIN_ROIS_PER_IMAGE - len(keep)
    if remaining > 0:
        # Not enough ROIs for the wanted balance: repeat background ones (or
        # foreground ones when there is no background at all).
        pool = keep_bg_ids if len(keep_bg_ids) else keep_fg_ids
        if len(pool) == 0:
            raise ValueError("build_detection_targets: no ROI is foreground "
                             "(IoU > 0.5) or background (IoU < 0.5)")
        keep = np.concatenate([keep, rng.choice(pool, remaining,
                                                replace=True)])

    # Background ROIs have no GT box or class.
    roi_gt_boxes[keep_bg_ids] = 0
    roi_gt_class_ids[keep_bg_ids] = 0

    rois = rpn_rois[keep]
    roi_gt_boxes = roi_gt_boxes[keep]
    roi_gt_class_ids = roi_gt_class_ids[keep]
    roi_gt_assignment = roi_gt_index[keep]

    # Class-specific box refinements, for foreground ROIs only.
    bboxes = np.zeros((config.TRAIN_ROIS_PER_IMAGE, config.NUM_CLASSES, 4),
                      dtype=np.float32)
    pos_ids = np.flatnonzero(roi_gt_class_ids > 0)
    bboxes[pos_ids, roi_gt_class_ids[pos_ids]] = utils.box_refinement(
        rois[pos_ids], roi_gt_boxes[pos_ids, :4])
    bboxes /= np.asarray(config.BBOX_STD_DEV, dtype=np.float32)

    # Class-specific masks: the GT mask cropped to the ROI, MASK_SHAPE.
    masks = np.zeros((config.TRAIN_ROIS_PER_IMAGE, config.MASK_SHAPE[0],
                      config.MASK_SHAPE[1], config.NUM_CLASSES),
                     dtype=np.float32)
    for i in pos_ids:
        gt_id = roi_gt_assignment[i]
        class_mask = gt_masks[:, :, gt_id]
        if config.USE_MINI_MASK:
            class_mask = _full_size_mask(class_mask, gt_boxes[gt_id],
                                         config.IMAGE_SHAPE[:2])
        y1, x1, y2, x2 = rois[i].astype(np.int32)
        masks[i, :, :, roi_gt_class_ids[i]] = utils.resize(
            class_mask[y1:y2, x1:x2].astype(np.float32),
            tuple(config.MASK_SHAPE))
    return rois, roi_gt_class_ids, bboxes, masks


############################################################
#  Data feeds
############################################################

def _training_anchors(config):
    """Pixel anchors for config.IMAGE_SHAPE (read-only) and their index."""
    backbone_shapes = compute_backbone_shapes(config, config.IMAGE_SHAPE)
    anchors = utils.generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, backbone_shapes,
        config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    anchors.flags.writeable = False
    return anchors, _AnchorIndex(anchors)


def _training_sample(dataset, config, image_id, anchors, index, rng,
                     augment=False, augmentation=None, random_rois=0,
                     detection_targets=False):
    """Everything one image contributes to a training batch.

    Returns None when the image has no instances (nothing to train on),
    else a dict: image, image_meta, rpn_match, rpn_bbox, gt_class_ids,
    gt_boxes, gt_masks (all GT instances, not yet capped at
    MAX_GT_INSTANCES) and, with random_rois, rpn_rois (+ rois,
    mrcnn_class_ids, mrcnn_bbox, mrcnn_mask with detection_targets).
    """
    image, image_meta, gt_class_ids, gt_boxes, gt_masks = load_image_gt(
        dataset, config, image_id, augment=augment, augmentation=augmentation,
        use_mini_mask=config.USE_MINI_MASK)
    if not np.any(gt_class_ids > 0):
        return None
    rpn_match, rpn_bbox = _rpn_targets(index, anchors, gt_class_ids, gt_boxes,
                                       config, rng)
    sample = {"image": image, "image_meta": image_meta,
              "rpn_match": rpn_match, "rpn_bbox": rpn_bbox,
              "gt_class_ids": gt_class_ids, "gt_boxes": gt_boxes,
              "gt_masks": gt_masks}
    if random_rois:
        sample["rpn_rois"] = generate_random_rois(
            image.shape, random_rois, gt_class_ids, gt_boxes, rng=rng)
        if detection_targets:
            (sample["rois"], sample["mrcnn_class_ids"], sample["mrcnn_bbox"],
             sample["mrcnn_mask"]) = build_detection_targets(
                sample["rpn_rois"], gt_class_ids, gt_boxes, gt_masks, config,
                rng=rng)
    return sample


def _cap_instances(sample, max_instances, rng, description):
    """Keeps a random max_instances of the GT instances (sorted), warning."""
    count = len(sample["gt_class_ids"])
    if count <= max_instances:
        return sample
    logger.warning("%s has %d instances, more than MAX_GT_INSTANCES=%d; "
                   "using a random subset", description, count,
                   max_instances)
    ids = np.sort(rng.choice(count, max_instances, replace=False))
    sample = dict(sample)
    sample["gt_class_ids"] = sample["gt_class_ids"][ids]
    sample["gt_boxes"] = sample["gt_boxes"][ids]
    sample["gt_masks"] = sample["gt_masks"][:, :, ids]
    return sample


def data_generator(dataset, config, shuffle=True, augment=False,
                   augmentation=None, random_rois=0, batch_size=1,
                   detection_targets=False, no_augmentation_sources=None):
    """A generator that returns images and corresponding target class ids,
    bounding box deltas, and masks (matterport's generator).

    dataset: the Dataset object to pick data from
    config: the model config object
    shuffle: if True, shuffles the samples before every epoch
    augment: (deprecated) random horizontal flips. Use augmentation instead.
    augmentation: optional imgaug augmenter.
    random_rois: if > 0 then generate proposals to be used to train the
                 network classifier and mask heads.
    batch_size: how many images to return in each call
    detection_targets: if True, generate detection targets (class IDs, bbox
        deltas, and masks). Typically for debugging or visualizations.
    no_augmentation_sources: list of sources to exclude from augmentation.

    Yields (inputs, outputs), both lists:
    inputs: [images, image_meta, rpn_match [batch, anchors, 1], rpn_bbox,
        gt_class_ids, gt_boxes, gt_masks] (+ rpn_rois with random_rois,
        + rois with detection_targets).
    outputs: empty, or [mrcnn_class_ids [batch, rois, 1], mrcnn_bbox,
        mrcnn_mask] with detection_targets.
    Images without instances are skipped with a warning; ValueError if no
    image of the dataset has any.
    """
    image_ids = np.copy(dataset.image_ids)
    if len(image_ids) == 0:
        raise ValueError("data_generator: the dataset has no images (did you "
                         "call dataset.prepare()?)")
    no_augmentation_sources = no_augmentation_sources or []
    anchors, index = _training_anchors(config)
    image_index = -1
    error_count = 0
    skipped_in_a_row = 0
    warned = set()
    batch = []
    while True:
        image_index = (image_index + 1) % len(image_ids)
        if image_index == 0:
            dropped.log_epoch(dataset)  # the pass just finished, if any
        if shuffle and image_index == 0:
            np.random.shuffle(image_ids)
        image_id = image_ids[image_index]
        source = dataset.image_info[image_id]["source"]
        try:
            sample = _training_sample(
                dataset, config, image_id, anchors, index,
                _as_generator(None), augment=augment,
                augmentation=(None if source in no_augmentation_sources
                              else augmentation),
                random_rois=random_rois,
                detection_targets=detection_targets)
        except (GeneratorExit, KeyboardInterrupt):
            raise
        except Exception:
            logger.exception("Error processing %s",
                             describe_image(dataset, image_id))
            error_count += 1
            if error_count > 5:
                raise
            continue
        if sample is None:
            skipped_in_a_row += 1
            if image_id not in warned:
                warned.add(image_id)
                logger.warning("Skipping %s: it has no instances",
                               describe_image(dataset, image_id))
            if skipped_in_a_row >= len(image_ids):
                raise ValueError(
                    "data_generator: none of the {} images of the dataset "
                    "has instances to train on".format(len(image_ids)))
            continue
        skipped_in_a_row = 0
        batch.append(_cap_instances(sample, config.MAX_GT_INSTANCES,
                                    _as_generator(None),
                                    describe_image(dataset, image_id)))
        if len(batch) == batch_size:
            yield _generator_batch(batch, config, random_rois,
                                   detection_targets)
            batch = []


def _pad_instances(samples, key, shape_tail, dtype, axis):
    """Stacks per-image instance arrays into zeros of [batch] + shape_tail.

    axis: the instance axis of the arrays (0 or -1).
    """
    out = np.zeros((len(samples),) + tuple(shape_tail), dtype=dtype)
    for b, sample in enumerate(samples):
        values = sample[key]
        count = values.shape[axis]
        if axis == 0:
            out[b, :count] = values
        else:
            out[b, ..., :count] = values
    return out


def _generator_batch(samples, config, random_rois, detection_targets):
    """matterport's (inputs, outputs) lists from a list of samples."""
    max_gt = config.MAX_GT_INSTANCES
    mask_hw = samples[0]["gt_masks"].shape[:2]
    inputs = [
        np.stack([mold_image(s["image"], config) for s in samples]),
        np.stack([s["image_meta"] for s in samples]),
        np.stack([s["rpn_match"] for s in samples])[:, :, np.newaxis],
        np.stack([s["rpn_bbox"] for s in samples]),
        _pad_instances(samples, "gt_class_ids", [max_gt], np.int32, 0),
        _pad_instances(samples, "gt_boxes", [max_gt, 4], np.int32, 0),
        _pad_instances(samples, "gt_masks", list(mask_hw) + [max_gt],
                       bool, -1),
    ]
    outputs = []
    if random_rois:
        inputs.append(np.stack([s["rpn_rois"] for s in samples]))
        if detection_targets:
            inputs.append(np.stack([s["rois"] for s in samples]))
            outputs = [
                np.stack([s["mrcnn_class_ids"] for s in samples])[..., None],
                np.stack([s["mrcnn_bbox"] for s in samples]),
                np.stack([s["mrcnn_mask"] for s in samples]),
            ]
    return inputs, outputs


class MaskRCNNDataset(keras.utils.PyDataset):
    """Training batches for MaskRCNN.keras_model as a Keras PyDataset.

    Each item is one dict of numpy arrays keyed by the model input names:
    input_image float32 [B, H, W, C] (molded), input_image_meta float32
    [B, META], input_rpn_match int32 [B, anchors, 1], input_rpn_bbox float32
    [B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4], input_gt_class_ids int32
    [B, MAX_GT_INSTANCES], input_gt_boxes float32 [B, MAX_GT_INSTANCES, 4]
    (pixels), input_gt_masks bool [B, mask_h, mask_w, MAX_GT_INSTANCES]
    (MINI_MASK_SHAPE or IMAGE_SHAPE[:2]) and, with random_rois > 0,
    input_rois int32 [B, random_rois, 4] (pixels).

    Batch idx of epoch e depends only on (seed, e, idx), so batches can be
    built in any order by worker threads (use_multiprocessing is refused:
    forked processes deadlock TensorFlow). Images without instances are
    skipped (the next image is used) with a warning. on_epoch_end()
    reshuffles.
    """

    def __init__(self, dataset, config, shuffle=True, augmentation=None,
                 random_rois=0, no_augmentation_sources=None, steps=None,
                 workers=1, use_multiprocessing=False, max_queue_size=10,
                 seed=None):
        if use_multiprocessing:
            logger.warning("MaskRCNNDataset uses threads: TensorFlow "
                           "deadlocks in forked processes. Ignoring "
                           "use_multiprocessing=True.")
        super().__init__(workers=workers, use_multiprocessing=False,
                         max_queue_size=max_queue_size)
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.random_rois = int(random_rois or 0)
        self.no_augmentation_sources = set(no_augmentation_sources or [])
        self.steps = steps
        self.image_ids = np.asarray(dataset.image_ids)
        if len(self.image_ids) == 0:
            raise ValueError("MaskRCNNDataset: the dataset has no images (did "
                             "you call dataset.prepare()?)")
        self.seed = (int(np.random.randint(0, 2 ** 31 - 1)) if seed is None
                     else int(seed))
        self.anchors, self._index = _training_anchors(config)
        # (epoch, image order), replaced as a whole so a worker thread never
        # mixes the epoch number of one with the order of another.
        self._epoch_state = (0, self._epoch_order(0))
        self._warned = set()
        self._batch_image_ids = {}

    def _epoch_order(self, epoch):
        if not self.shuffle:
            return self.image_ids.copy()
        return np.random.default_rng([self.seed, epoch]).permutation(
            self.image_ids)

    def __len__(self):
        if self.steps:
            return int(self.steps)
        return int(math.ceil(len(self.image_ids) / self.config.BATCH_SIZE))

    @property
    def epoch(self):
        """Number of on_epoch_end() calls so far."""
        return self._epoch_state[0]

    def on_epoch_end(self):
        dropped.log_epoch(self.dataset, self.epoch + 1)
        epoch = self.epoch + 1
        self._epoch_state = (epoch, self._epoch_order(epoch))

    def image_ids_of_batch(self, idx):
        """Image ids of the last build of batch idx (None if not built)."""
        return self._batch_image_ids.get(idx)

    def _augmenter_for(self, image_id, rng):
        """A private, seeded copy of the augmenter (threads share none)."""
        if self.augmentation is None:
            return None
        if self.dataset.image_info[image_id]["source"] \
                in self.no_augmentation_sources:
            return None
        augmenter = self.augmentation.deepcopy()
        augmenter.seed_(int(rng.integers(0, 2 ** 31 - 1)))
        return augmenter

    def _next_sample(self, order, position, rng):
        """The first image with instances from order[position] on.

        Returns (position used, image_id, sample).
        """
        for step in range(len(order)):
            image_id = order[(position + step) % len(order)]
            sample = _training_sample(
                self.dataset, self.config, image_id, self.anchors, self._index,
                rng, augmentation=self._augmenter_for(image_id, rng),
                random_rois=self.random_rois)
            if sample is not None:
                return position + step, image_id, sample
            if image_id not in self._warned:
                self._warned.add(image_id)
                logger.warning("Skipping %s: it has no instances",
                               describe_image(self.dataset, image_id))
        raise ValueError(
            "MaskRCNNDataset: none of the {} images of the dataset has "
            "instances to train on".format(len(order)))

    def __getitem__(self, idx):
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError("batch {} out of range for {} batches".format(
                idx, len(self)))
        epoch, order = self._epoch_state
        batch_size = self.config.BATCH_SIZE
        position = idx * batch_size
        samples, image_ids = [], []
        for slot in range(batch_size):
            rng = np.random.default_rng([self.seed, epoch, idx, slot])
            position, image_id, sample = self._next_sample(order, position,
                                                           rng)
            position += 1  # the next slot starts after the image used
            samples.append(_cap_instances(
                sample, self.config.MAX_GT_INSTANCES, rng,
                describe_image(self.dataset, image_id)))
            image_ids.append(int(image_id))
        self._batch_image_ids[idx] = image_ids
        return self._batch_dict(samples)

    def _batch_dict(self, samples):
        config = self.config
        expected = tuple(int(d) for d in config.IMAGE_SHAPE[:2])
        for sample in samples:
            if sample["image"].shape[:2] != expected:
                raise ValueError(
                    "image {} was resized to {} but the anchors are for "
                    "IMAGE_SHAPE {}; use IMAGE_RESIZE_MODE 'square' or 'crop'"
                    .format(int(sample["image_meta"][0]),
                            sample["image"].shape[:2], expected))
        max_gt = config.MAX_GT_INSTANCES
        mask_hw = list(samples[0]["gt_masks"].shape[:2])
        batch = {
            "input_image": np.stack(
                [mold_image(s["image"], config) for s in samples]),
            "input_image_meta": np.stack(
                [s["image_meta"] for s in samples]).astype(np.float32),
            "input_rpn_match": np.stack(
                [s["rpn_match"] for s in samples])[:, :, np.newaxis],
            "input_rpn_bbox": np.stack([s["rpn_bbox"] for s in samples]),
            "input_gt_class_ids": _pad_instances(
                samples, "gt_class_ids", [max_gt], np.int32, 0),
            "input_gt_boxes": _pad_instances(
                samples, "gt_boxes", [max_gt, 4], np.float32, 0),
            "input_gt_masks": _pad_instances(
                samples, "gt_masks", mask_hw + [max_gt], bool, -1),
        }
        if self.random_rois:
            batch["input_rois"] = np.stack(
                [s["rpn_rois"] for s in samples]).astype(np.int32)
        return batch


# The name used by earlier drafts of this port.
DataSequence = MaskRCNNDataset
