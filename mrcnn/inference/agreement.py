"""Do two runtimes give the same detections? detect() against an exported
model (ONNX, LiteRT), or any two results of detect()'s form.

The rules (those of the export tests): every detection has a partner of
the same class whose score is within `score_atol`, whose box is within
`box_atol_px` pixels on every side and whose mask overlaps at IoU >=
`min_mask_iou`. Partners are found by class and box, not by list index:
two detections whose scores differ by less than a runtime's rounding may
be listed in either order, and that is not a disagreement.

For the same reason a detection may lack a partner when it sits at a cut:
the list is full (`max_detections`) or its score is at the confidence
threshold, and its score is within `score_atol` of where the other list
was cut. Such a detection is counted as `unmatched_at_cut`, not as a
failure; any other one without a partner fails the rules.
"""

import numpy as np

from mrcnn.structures.boxes import compute_overlaps

PAIR_MIN_BOX_IOU = 0.5   # below it two boxes are different detections


def mask_iou(a, b):
    """IoU of two boolean masks of the same shape [H, W]; 1.0 when both
    are empty."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def pair_detections(expected, actual):
    """Greedy pairs (i, j) of expected and actual detections: in expected's
    score order, each takes the unpaired actual detection of its class with
    the highest box IoU, when that IoU is at least PAIR_MIN_BOX_IOU.

    expected, actual: dicts of detect()'s form: rois [n, (y1, x1, y2, x2)]
        in pixels, class_ids [n], scores [n].
    Returns a list of (i, j) index pairs.
    """
    if not len(expected["class_ids"]) or not len(actual["class_ids"]):
        return []
    overlaps = compute_overlaps(np.asarray(expected["rois"], np.float64),
                                np.asarray(actual["rois"], np.float64))
    same_class = (np.asarray(expected["class_ids"])[:, None]
                  == np.asarray(actual["class_ids"])[None, :])
    overlaps = np.where(same_class, overlaps, -1.0)
    pairs, taken = [], np.zeros(len(actual["class_ids"]), bool)
    for i in np.argsort(-np.asarray(expected["scores"]), kind="stable"):
        candidates = np.where(taken, -1.0, overlaps[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= PAIR_MIN_BOX_IOU:
            pairs.append((int(i), j))
            taken[j] = True
    return pairs


def _at_cut(score, other_scores, max_detections, min_score, score_atol):
    """Whether a detection of `score` could have fallen on either side of
    the other list's cut by a rounding within score_atol."""
    if min_score is not None and abs(score - min_score) <= score_atol:
        return True
    full = max_detections is not None and len(other_scores) >= max_detections
    return bool(full and score <= np.min(other_scores) + score_atol)


def compare_detections(expected, actual, score_atol=1e-3, box_atol_px=1,
                       min_mask_iou=0.95, max_detections=None,
                       min_score=None):
    """The agreement of `actual` with `expected` under the rules above.

    expected, actual: dicts of detect()'s form (rois in pixels, class_ids,
        scores, and masks [H, W, n] bool where both have them).
    max_detections: the length at which a list is cut (the config's
        DETECTION_MAX_INSTANCES); min_score its DETECTION_MIN_CONFIDENCE.
    Returns a dict: counts (detections, detections_actual, matched,
    unmatched_at_cut, unmatched), the largest differences over the pairs
    (max_score_diff, max_box_diff_px, min_mask_iou: None without pairs),
    index_order_equal (the same classes in the same order) and
    within_rules.
    """
    pairs = pair_detections(expected, actual)
    report = {"detections": int(len(expected["class_ids"])),
              "detections_actual": int(len(actual["class_ids"])),
              "matched": len(pairs),
              "index_order_equal": bool(
                  len(expected["class_ids"]) == len(actual["class_ids"])
                  and np.array_equal(expected["class_ids"],
                                     actual["class_ids"]))}
    report.update(_pair_differences(expected, actual, pairs))
    at_cut, unexplained = _unmatched(expected, actual, pairs, score_atol,
                                     max_detections, min_score)
    report.update(unmatched_at_cut=at_cut, unmatched=unexplained)
    report["within_rules"] = bool(
        unexplained == 0 and report["detections"] > 0 and pairs
        and report["max_score_diff"] <= score_atol
        and report["max_box_diff_px"] <= box_atol_px
        and (report["min_mask_iou"] is None
             or report["min_mask_iou"] >= min_mask_iou))
    return report


def _pair_differences(expected, actual, pairs):
    """The largest score and box differences and the smallest mask IoU
    over the pairs."""
    if not pairs:
        return {"max_score_diff": None, "max_box_diff_px": None,
                "min_mask_iou": None}
    i, j = (np.array(side) for side in zip(*pairs))
    score_diff = np.abs(np.asarray(expected["scores"], np.float64)[i]
                        - np.asarray(actual["scores"], np.float64)[j])
    box_diff = np.abs(np.asarray(expected["rois"], np.int64)[i]
                      - np.asarray(actual["rois"], np.int64)[j])
    ious = None
    if "masks" in expected and "masks" in actual:
        ious = [mask_iou(expected["masks"][..., a], actual["masks"][..., b])
                for a, b in pairs]
    return {"max_score_diff": float(score_diff.max()),
            "max_box_diff_px": int(box_diff.max()),
            "min_mask_iou": None if ious is None else min(ious)}


def _unmatched(expected, actual, pairs, score_atol, max_detections,
               min_score):
    """(detections without a partner at a cut, the others), both lists."""
    at_cut = unexplained = 0
    for side, other, paired in ((expected, actual, {i for i, _ in pairs}),
                                (actual, expected, {j for _, j in pairs})):
        other_scores = np.asarray(other["scores"], np.float64)
        for k, score in enumerate(np.asarray(side["scores"], np.float64)):
            if k in paired:
                continue
            if _at_cut(score, other_scores, max_detections, min_score,
                       score_atol):
                at_cut += 1
            else:
                unexplained += 1
    return at_cut, unexplained
