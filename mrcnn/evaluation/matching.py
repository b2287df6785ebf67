"""Matching detections to ground truth, and the AP and recall built on it
(matterport's ``compute_matches``, ``compute_ap``, ``compute_ap_range`` and
``compute_recall``). Masks are ``[height, width, N]``, boxes
``(y1, x1, y2, x2)`` pixels."""

import numpy as np

from mrcnn.structures.boxes import _safe_divide, compute_overlaps, trim_zeros
from mrcnn.structures.masks import compute_overlaps_masks


def compute_matches(gt_boxes, gt_class_ids, gt_masks,
                    pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5, score_threshold=0.0):
    """Matches predictions to ground truth by mask IoU.

    Predictions are visited from the highest score down; each takes the
    unmatched ground-truth instance of the same class with the highest IoU,
    if that IoU is at least iou_threshold. As in matterport, ground-truth
    candidates whose IoU is below score_threshold are ignored.

    gt_boxes: [N, (y1, x1, y2, x2)] (all-zero padding rows are dropped).
    gt_class_ids: [N]; gt_masks: [height, width, N].
    pred_boxes: [M, (y1, x1, y2, x2)]; pred_class_ids, pred_scores: [M];
    pred_masks: [height, width, M].

    Returns:
        gt_match: [N] index of the matched prediction, -1 if none.
        pred_match: [M] index of the matched ground truth, -1 if none; in
            order of decreasing score.
        overlaps: [M, N] mask IoUs, predictions in order of decreasing score.
    """
    gt_boxes = trim_zeros(np.asarray(gt_boxes).reshape(-1, 4))
    gt_masks = np.asarray(gt_masks)[..., :gt_boxes.shape[0]]
    pred_boxes = trim_zeros(np.asarray(pred_boxes).reshape(-1, 4))
    pred_scores = np.asarray(pred_scores)[:pred_boxes.shape[0]]
    order = np.argsort(pred_scores, kind="stable")[::-1]
    pred_class_ids = np.asarray(pred_class_ids)[order]
    pred_masks = np.asarray(pred_masks)[..., order]

    overlaps = compute_overlaps_masks(pred_masks, gt_masks)

    pred_match = -1 * np.ones([len(order)])
    gt_match = -1 * np.ones([gt_boxes.shape[0]])
    for i in range(len(order)):
        candidates = np.argsort(overlaps[i], kind="stable")[::-1]
        candidates = candidates[overlaps[i, candidates] >= score_threshold]
        for j in candidates:
            if gt_match[j] > -1:
                continue  # already taken by a better-scored prediction
            if overlaps[i, j] < iou_threshold:
                break  # the rest overlap even less
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match, overlaps


def compute_ap(gt_boxes, gt_class_ids, gt_masks,
               pred_boxes, pred_class_ids, pred_scores, pred_masks,
               iou_threshold=0.5):
    """Average precision at one IoU threshold (PASCAL VOC style, all points).

    Arguments as in compute_matches.

    Returns:
        mAP: the area under the interpolated precision-recall curve.
        precisions: interpolated precisions, padded with a 0 at each end.
        recalls: recalls, padded with 0 at the start and 1 at the end.
        overlaps: [pred_boxes, gt_boxes] mask IoUs.
    An image without ground truth has recall 0 and so AP 0 (matterport
    returned NaN).
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks,
        pred_boxes, pred_class_ids, pred_scores, pred_masks,
        iou_threshold)

    true_positives = np.cumsum(pred_match > -1)
    precisions = true_positives / (np.arange(len(pred_match)) + 1)
    recalls = _safe_divide(true_positives, len(gt_match))

    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    # Each precision becomes the best precision at this or a higher recall.
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]

    # Area under the step curve, summed where recall changes.
    steps = np.where(recalls[:-1] != recalls[1:])[0] + 1
    mAP = np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps])
    return mAP, precisions, recalls, overlaps


def compute_ap_range(gt_box, gt_class_id, gt_mask,
                     pred_box, pred_class_id, pred_score, pred_mask,
                     iou_thresholds=None, verbose=1):
    """Mean AP over IoU thresholds (default 0.5:0.95 in steps of 0.05)."""
    if iou_thresholds is None:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    aps = []
    for iou_threshold in iou_thresholds:
        ap, _, _, _ = compute_ap(
            gt_box, gt_class_id, gt_mask,
            pred_box, pred_class_id, pred_score, pred_mask,
            iou_threshold=iou_threshold)
        if verbose:
            print("AP @{:.2f}:\t {:.3f}".format(iou_threshold, ap))
        aps.append(ap)
    mean_ap = np.array(aps).mean()
    if verbose:
        print("AP @{:.2f}-{:.2f}:\t {:.3f}".format(
            iou_thresholds[0], iou_thresholds[-1], mean_ap))
    return mean_ap


def compute_recall(pred_boxes, gt_boxes, iou):
    """Recall of the ground-truth boxes at an IoU threshold.

    pred_boxes: [N, (y1, x1, y2, x2)]; gt_boxes: [M, (y1, x1, y2, x2)].
    iou: IoU threshold.
    Returns:
        recall: fraction of ground-truth boxes that are the best match of
            some prediction with IoU >= iou.
        positive_ids: indices of the predictions with IoU >= iou.
    """
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    if overlaps.size == 0:
        return 0.0, np.zeros([0], dtype=np.int64)
    iou_max = np.max(overlaps, axis=1)
    iou_argmax = np.argmax(overlaps, axis=1)
    positive_ids = np.where(iou_max >= iou)[0]
    matched_gt_boxes = iou_argmax[positive_ids]
    recall = len(set(matched_gt_boxes)) / np.asarray(gt_boxes).shape[0]
    return recall, positive_ids
