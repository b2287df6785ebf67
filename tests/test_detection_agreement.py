"""mrcnn.inference.agreement: detections compared by class and box, with
swaps at the cut among near-equal scores excused and nothing else."""
import numpy as np

from mrcnn.inference.agreement import compare_detections, pair_detections


def detections(boxes, class_ids, scores, shape=(64, 64)):
    """A detect()-like dict whose masks fill each box."""
    masks = np.zeros(shape + (len(boxes),), bool)
    for k, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, k] = True
    return {"rois": np.array(boxes, np.int32).reshape(-1, 4),
            "class_ids": np.array(class_ids, np.int32),
            "scores": np.array(scores, np.float32), "masks": masks}


BOXES = [(0, 0, 10, 10), (20, 20, 40, 40), (5, 30, 25, 60), (40, 0, 60, 20)]


def base():
    return detections(BOXES, [1, 2, 1, 3], [0.9, 0.8, 0.5, 0.5])


def reorder(result, order):
    out = {k: v[..., order] if k == "masks" else v[order]
           for k, v in result.items()}
    return out


def test_identical_lists_agree():
    report = compare_detections(base(), base())
    assert report["within_rules"] and report["matched"] == 4
    assert report["max_score_diff"] == 0 and report["min_mask_iou"] == 1.0


def test_equal_scores_in_the_other_order_still_agree():
    actual = reorder(base(), [0, 1, 3, 2])
    report = compare_detections(base(), actual)
    assert report["within_rules"]
    assert not report["index_order_equal"]  # an index comparison fails


def test_each_rule_is_enforced():
    shifted = base()
    shifted["rois"][1] += [0, 0, 2, 0]           # an edge 2 pixels off
    assert compare_detections(base(), shifted)["max_box_diff_px"] == 2
    assert not compare_detections(base(), shifted)["within_rules"]
    scored = base()
    scored["scores"][0] -= 0.002
    assert not compare_detections(base(), scored)["within_rules"]
    assert compare_detections(base(), scored, score_atol=3e-3)["within_rules"]
    relabelled = base()
    relabelled["class_ids"][1] = 3                # no partner of its class
    report = compare_detections(base(), relabelled)
    assert report["unmatched"] == 2 and not report["within_rules"]


def test_mask_iou_below_the_rule_fails():
    thinner = base()
    thinner["masks"][:, 30:40, 1] = False         # IoU 0.5 of box 1's mask
    report = compare_detections(base(), thinner)
    assert abs(report["min_mask_iou"] - 0.5) < 1e-9
    assert not report["within_rules"]


def test_a_swap_at_a_full_cut_is_excused_only_near_the_cut_score():
    # Both lists hold max_detections=3; the fourth detections tie at 0.5
    # and each runtime kept a different one.
    full = base()
    expected = {k: (v[..., :3] if k == "masks" else v[:3])
                for k, v in full.items()}
    actual = {k: (v[..., [0, 1, 3]] if k == "masks" else v[[0, 1, 3]])
              for k, v in full.items()}
    report = compare_detections(expected, actual, max_detections=3)
    assert report["within_rules"]
    assert report["matched"] == 2 and report["unmatched_at_cut"] == 2
    # Without the cut (room for more), a missing detection is a failure.
    report = compare_detections(expected, actual, max_detections=None)
    assert report["unmatched"] == 2 and not report["within_rules"]
    # A missing detection far above the cut score is a failure too.
    actual["scores"] = np.array([0.9, 0.8, 0.5], np.float32)
    expected["scores"] = np.array([0.9, 0.8, 0.7], np.float32)
    report = compare_detections(expected, actual, max_detections=3)
    assert report["unmatched"] == 1 and not report["within_rules"]


def test_a_detection_at_the_confidence_threshold_is_excused():
    expected = base()
    expected["scores"][3] = 0.0502
    actual = {k: (v[..., :3] if k == "masks" else v[:3])
              for k, v in expected.items()}
    report = compare_detections(expected, actual, min_score=0.05)
    assert report["within_rules"] and report["unmatched_at_cut"] == 1
    assert not compare_detections(expected, actual)["within_rules"]


def test_pairs_follow_box_overlap_not_index():
    actual = reorder(base(), [3, 2, 1, 0])
    assert sorted(pair_detections(base(), actual)) == [(0, 3), (1, 2),
                                                       (2, 1), (3, 0)]


def test_empty_lists_do_not_agree_vacuously():
    empty = detections([], [], [])
    assert not compare_detections(empty, empty)["within_rules"]
