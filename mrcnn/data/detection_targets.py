"""Numpy detection targets and random ROIs, for debugging the heads.

Twins of the graph's ``DetectionTargetLayer`` (``mrcnn.network.targets``), used by
``data_generator(..., random_rois=N, detection_targets=True)``.
"""

import numpy as np

from mrcnn.constants import HEAD_POSITIVE_IOU
from mrcnn.structures.boxes import compute_overlaps, encode_boxes
from mrcnn.structures.resizing import resize
from mrcnn.data.rng import _as_generator


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
        resize(mini_mask.astype(np.float32), (y2 - y1, x2 - x1))
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
    if rpn_rois.shape[0] == 0:
        raise ValueError("build_detection_targets: no ROIs given")
    gt_class_ids, gt_boxes, gt_masks = _instances_only(
        gt_class_ids, gt_boxes, gt_masks)

    # Assign each ROI to the GT box it overlaps most.
    overlaps = compute_overlaps(rpn_rois, gt_boxes)
    roi_gt_index = np.argmax(overlaps, axis=1)
    roi_iou_max = overlaps[np.arange(len(rpn_rois)), roi_gt_index]
    roi_gt_boxes = gt_boxes[roi_gt_index]
    roi_gt_class_ids = gt_class_ids[roi_gt_index]

    keep, keep_bg_ids = _sample_rois(roi_iou_max, config, rng)
    # Background ROIs have no GT box or class.
    roi_gt_boxes[keep_bg_ids] = 0
    roi_gt_class_ids[keep_bg_ids] = 0

    rois = rpn_rois[keep]
    roi_gt_class_ids = roi_gt_class_ids[keep]
    bboxes, masks = _roi_box_and_mask_targets(
        rois, roi_gt_class_ids, roi_gt_boxes[keep], roi_gt_index[keep],
        gt_boxes, gt_masks, config)
    return rois, roi_gt_class_ids, bboxes, masks


def _instances_only(gt_class_ids, gt_boxes, gt_masks):
    """Drops the padding (class id 0) of the GT arrays; ValueError if no
    instance is left. Returns int32 class ids [K], int32 pixel boxes [K, 4]
    and bool masks [height, width, K]."""
    gt_class_ids = np.asarray(gt_class_ids)
    instance_ids = np.flatnonzero(gt_class_ids > 0)
    if len(instance_ids) == 0:
        raise ValueError("build_detection_targets: the image must contain "
                         "instances (all class ids are 0)")
    return (gt_class_ids[instance_ids].astype(np.int32),
            np.asarray(gt_boxes)[instance_ids].astype(np.int32),
            np.asarray(gt_masks)[:, :, instance_ids].astype(bool))


def _sample_rois(roi_iou_max, config, rng):
    """Picks TRAIN_ROIS_PER_IMAGE ROIs, ROI_POSITIVE_RATIO of them positive.

    roi_iou_max: [N] best IoU of each ROI with a GT box. Positive ROIs have
    IoU > HEAD_POSITIVE_IOU (0.5; > as the original's numpy code, where its
    graph has >=: see mrcnn.constants), negatives < 0.5 (no hard mining).
    Returns (keep [TRAIN_ROIS_PER_IMAGE] ROI indices, the background ROI
    indices among them before any repetition).
    """
    fg_ids = np.flatnonzero(roi_iou_max > HEAD_POSITIVE_IOU)
    bg_ids = np.flatnonzero(roi_iou_max < HEAD_POSITIVE_IOU)
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
            raise ValueError(
                "build_detection_targets: no ROI is foreground (IoU > {0}) "
                "or background (IoU < {0})".format(HEAD_POSITIVE_IOU))
        keep = np.concatenate([keep, rng.choice(pool, remaining,
                                                replace=True)])
    return keep, keep_bg_ids


def _roi_box_and_mask_targets(rois, roi_gt_class_ids, roi_gt_boxes,
                              roi_gt_assignment, gt_boxes, gt_masks, config):
    """Class-specific box deltas and masks of the foreground ROIs.

    rois, roi_gt_boxes: [R, (y1, x1, y2, x2)] pixels; roi_gt_class_ids,
    roi_gt_assignment: [R] class and GT index of each ROI (class 0:
    background, which gets zero targets).
    Returns bboxes [R, NUM_CLASSES, 4] (divided by BBOX_STD_DEV) and masks
    [R, MASK_SHAPE[0], MASK_SHAPE[1], NUM_CLASSES], both float32.
    """
    bboxes = np.zeros((config.TRAIN_ROIS_PER_IMAGE, config.NUM_CLASSES, 4),
                      dtype=np.float32)
    pos_ids = np.flatnonzero(roi_gt_class_ids > 0)
    bboxes[pos_ids, roi_gt_class_ids[pos_ids]] = encode_boxes(
        rois[pos_ids], roi_gt_boxes[pos_ids, :4], config.BBOX_STD_DEV)

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
        masks[i, :, :, roi_gt_class_ids[i]] = resize(
            class_mask[y1:y2, x1:x2].astype(np.float32),
            tuple(config.MASK_SHAPE))
    return bboxes, masks
