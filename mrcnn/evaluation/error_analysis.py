"""Error analysis: which classes a model confuses, misses or invents.

``image_confusion`` matches the detections of one image to its ground
truth at an IoU threshold and counts the pairs in a confusion matrix
indexed by class id, where index 0 (the background) stands for "nothing":

* ``matrix[g, p]`` (g, p >= 1): ground-truth instances of class g matched by
  a detection of class p (the diagonal: right class);
* ``matrix[g, 0]``: instances of class g that no detection matched
  (**missed**);
* ``matrix[0, p]``: detections of class p that matched no instance
  (**false positives**, duplicates of a matched instance included).

Rows are ground truth, columns predictions. Matching is greedy by score:
each detection, best score first, takes the unmatched instance of highest
IoU >= the threshold, one of its own class when there is one (so a right
answer is not stolen by a neighbour of another class), else one of any
class (a confusion). Crowd instances (negative class ids) and empty masks
are left out of the ground truth.
"""

import numpy as np

from mrcnn.structures.boxes import compute_overlaps, extract_bboxes
from mrcnn.structures.masks import compute_overlaps_masks

MISSED = "missed"
FALSE_POSITIVE = "false positive"


def match_detections(gt_class_ids, pred_class_ids, pred_scores, overlaps,
                     iou_threshold=0.5):
    """Greedy matching of detections to ground truth (see module docstring).

    gt_class_ids: [num_gt] int; pred_class_ids, pred_scores: [num_pred].
    overlaps: [num_pred, num_gt] IoU.
    Returns pred_to_gt: [num_pred] int, the index of the matched instance
    or -1.
    """
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    pred_class_ids = np.asarray(pred_class_ids).reshape(-1)
    overlaps = np.asarray(overlaps, dtype=np.float64).reshape(
        len(pred_class_ids), len(gt_class_ids))
    pred_to_gt = np.full(len(pred_class_ids), -1, dtype=np.int64)
    taken = np.zeros(len(gt_class_ids), dtype=bool)
    # Stable sort: equal scores keep their detection order.
    for p in np.argsort(-np.asarray(pred_scores), kind="stable"):
        candidates = ~taken & (overlaps[p] >= iou_threshold)
        same_class = candidates & (gt_class_ids == pred_class_ids[p])
        pool = same_class if same_class.any() else candidates
        if pool.any():
            g = int(np.argmax(np.where(pool, overlaps[p], -1.0)))
            pred_to_gt[p] = g
            taken[g] = True
    return pred_to_gt


def image_confusion(gt_class_ids, gt_masks, detection, num_classes,
                    iou_threshold=0.5, iou_type="segm"):
    """Confusion matrix of one image.

    gt_class_ids: [num_gt] int (crowds, negative, are dropped);
    gt_masks: [H, W, num_gt] bool at the image's size.
    detection: detect()'s dict: "rois" [num_pred, (y1, x1, y2, x2)] pixels,
        "class_ids", "scores" [num_pred], "masks" [H, W, num_pred].
    iou_type: "segm" (mask IoU) or "bbox" (box IoU).
    Returns: [num_classes, num_classes] int64, rows ground truth, columns
        predictions, index 0 = missed / false positive.
    """
    if iou_type not in ("segm", "bbox"):
        raise ValueError("iou_type must be 'segm' or 'bbox', got {!r}".format(
            iou_type))
    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    gt_masks = np.asarray(gt_masks).astype(bool)
    present = (gt_masks.any(axis=(0, 1)) if gt_masks.size
               else np.zeros(len(gt_class_ids), dtype=bool))
    keep = (gt_class_ids > 0) & present
    gt_class_ids, gt_masks = gt_class_ids[keep], gt_masks[..., keep]
    pred_class_ids = np.asarray(detection["class_ids"]).reshape(-1)
    if iou_type == "segm":
        overlaps = compute_overlaps_masks(detection["masks"], gt_masks)
    else:
        overlaps = compute_overlaps(detection["rois"], extract_bboxes(gt_masks))
    pred_to_gt = match_detections(gt_class_ids, pred_class_ids,
                                  detection["scores"], overlaps,
                                  iou_threshold)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    matched = pred_to_gt >= 0
    np.add.at(matrix, (gt_class_ids[pred_to_gt[matched]],
                       pred_class_ids[matched]), 1)
    np.add.at(matrix, (0, pred_class_ids[~matched]), 1)
    missed = np.ones(len(gt_class_ids), dtype=bool)
    missed[pred_to_gt[matched]] = False
    np.add.at(matrix, (gt_class_ids[missed], 0), 1)
    return matrix


def confusion_labels(class_names):
    """Row and column labels of a confusion matrix over class_names
    (background first): (rows, columns); index 0 is FALSE_POSITIVE for the
    rows (no ground truth) and MISSED for the columns (no detection)."""
    names = list(class_names)[1:]
    return [FALSE_POSITIVE] + names, [MISSED] + names


def confusion_summary(matrix, class_names, iou_threshold, iou_type):
    """A JSON-ready dict of a confusion matrix and what it counts."""
    matrix = np.asarray(matrix)
    rows, columns = confusion_labels(class_names)
    foreground = matrix[1:, 1:]
    return {
        "iou_threshold": float(iou_threshold),
        "iou_type": iou_type,
        "rows": rows,
        "columns": columns,
        "matrix": matrix.tolist(),
        "matched": int(foreground.sum()),
        "right_class": int(np.trace(foreground)),
        "confused": int(foreground.sum() - np.trace(foreground)),
        "missed": int(matrix[1:, 0].sum()),
        "false_positives": int(matrix[0, 1:].sum()),
    }
