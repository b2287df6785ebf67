"""RPN training targets: anchor labels and box deltas (``build_rpn_targets``).

The labels are exactly those of matterport's dense anchors x boxes IoU
matrix, computed through the spatial index of ``mrcnn.data.anchor_index``
so that only anchors that can reach a box's IoU thresholds are looked at.
"""

import numpy as np

from mrcnn.constants import CROWD_IOU
from mrcnn.structures.boxes import compute_overlaps, encode_boxes
from mrcnn.data.anchor_index import _IOU_SLACK, _cached_anchor_index
from mrcnn.data.rng import _as_generator

# An anchor touching a crowd box from this IoU is never a negative (the
# detection targets' CROWD_IOU). The positive and negative thresholds are
# Config.RPN_POSITIVE_IOU and RPN_NEGATIVE_IOU.
RPN_CROWD_IOU = CROWD_IOU


def _match_anchors_dense(anchors, gt_boxes, crowd_boxes, positive_iou,
                         negative_iou):
    """Matterport's labelling from the full IoU matrix (irregular anchors).

    Returns int8 [num_anchors]: 1 positive, -1 negative, 0 neutral, before
    subsampling.
    """
    labels = np.full([anchors.shape[0]], -1, dtype=np.int8)
    if len(crowd_boxes):
        crowd_iou = compute_overlaps(anchors, crowd_boxes).max(axis=1)
        labels[crowd_iou >= RPN_CROWD_IOU] = 0
    if not len(gt_boxes):
        return labels
    overlaps = compute_overlaps(anchors, gt_boxes)
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
    -1: IoU < negative_iou (0.3 by default) with every GT box and
       < RPN_CROWD_IOU with every crowd box.
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
        best_gt = np.argmax(compute_overlaps(positive_anchors, gt_boxes),
                            axis=1)
        rpn_bbox[:len(positive_ids)] = encode_boxes(
            positive_anchors, gt_boxes[best_gt], config.RPN_BBOX_STD_DEV)
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
