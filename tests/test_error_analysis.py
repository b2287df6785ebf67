"""Error analysis: the confusion matrix of matched instances
(mrcnn.evaluation.error_analysis), evaluate_model's per-class AP and confusion, and
their figures, checked on hand-built cases."""
import json

import matplotlib
import numpy as np
import pytest

from mrcnn import utils, visualize
from mrcnn.evaluation import error_analysis
from mrcnn.evaluation import evaluate
from tests.test_evaluate import FakeModel, InMemoryDataset, rect_mask

SHAPE = (64, 64)


def detection(masks, class_ids, scores):
    masks = np.stack(masks, axis=-1) if masks else np.zeros(SHAPE + (0,),
                                                           bool)
    return {"rois": utils.extract_bboxes(masks),
            "class_ids": np.asarray(class_ids, np.int32),
            "scores": np.asarray(scores, np.float32), "masks": masks}


# Ground truth: a (class 1) and b (class 2) found, c (class 1) missed.
A = rect_mask(SHAPE, 0, 0, 20, 20)
B = rect_mask(SHAPE, 30, 30, 60, 60)
C = rect_mask(SHAPE, 0, 40, 20, 60)
GT_MASKS = np.stack([A, B, C], axis=-1)
GT_IDS = np.array([1, 2, 1])


def hand_built_detection():
    return detection(
        [A,                                    # a as class 1: right
         B,                                    # b as class 1: confused
         rect_mask(SHAPE, 40, 0, 60, 20),      # class 2 on nothing: FP
         A],                                   # a again, lower score: FP
        [1, 1, 2, 1], [0.9, 0.8, 0.7, 0.6])


def test_hand_built_confusion_matrix():
    matrix = error_analysis.image_confusion(GT_IDS, GT_MASKS,
                                            hand_built_detection(), 3)
    # Rows ground truth (0: none), columns predictions (0: none).
    np.testing.assert_array_equal(matrix, [[0, 1, 1],
                                           [1, 1, 0],
                                           [0, 1, 0]])
    summary = error_analysis.confusion_summary(matrix, ["BG", "x", "y"],
                                               0.5, "segm")
    assert summary["rows"] == ["false positive", "x", "y"]
    assert summary["columns"] == ["missed", "x", "y"]
    assert (summary["matched"], summary["right_class"], summary["confused"],
            summary["missed"], summary["false_positives"]) == (2, 1, 1, 1, 2)
    json.dumps(summary)  # JSON-ready as it is


def test_iou_threshold_decides_a_match():
    # 20x20 ground truth, a 20x10 detection on half of it: IoU 0.5 exactly;
    # 20x8: IoU 0.4.
    half = detection([rect_mask(SHAPE, 0, 0, 20, 10)], [1], [0.9])
    less = detection([rect_mask(SHAPE, 0, 0, 20, 8)], [1], [0.9])
    gt = GT_MASKS[..., :1]
    matched = [[0, 0], [0, 1]]
    unmatched = [[0, 1], [1, 0]]
    for det, threshold, expected in ((half, 0.5, matched),
                                     (less, 0.5, unmatched),
                                     (less, 0.4, matched)):
        np.testing.assert_array_equal(error_analysis.image_confusion(
            [1], gt, det, 2, iou_threshold=threshold), expected)


def test_a_detection_prefers_an_instance_of_its_class():
    # Instances of classes 1 and 2; a class-2 detection overlaps the
    # class-1 one more (IoU 0.8) than its own (0.6).
    overlaps = np.array([[0.8, 0.6]])
    assert error_analysis.match_detections([1, 2], [2], [0.9],
                                           overlaps).tolist() == [1]
    # Alone above the threshold, the other class is taken: a confusion.
    assert error_analysis.match_detections([1, 2], [2], [0.9],
                                           [[0.8, 0.3]]).tolist() == [0]


def test_best_score_matches_first():
    # Two detections on one instance: the higher score takes it, whatever
    # the order they come in.
    assert error_analysis.match_detections(
        [1], [1, 1], [0.3, 0.9], [[0.9], [0.7]]).tolist() == [-1, 0]


def test_box_iou_and_crowds():
    # Boxes: an L-shaped mask and a detection filling its box match by box
    # IoU (1.0) but not by mask IoU (700 / 1600 px < 0.6).
    ell = rect_mask(SHAPE, 0, 0, 40, 10) | rect_mask(SHAPE, 30, 0, 40, 40)
    box = detection([rect_mask(SHAPE, 0, 0, 40, 40)], [1], [0.9])
    args = ([1], ell[..., None], box, 2)
    assert error_analysis.image_confusion(*args, iou_threshold=0.6,
                                          iou_type="bbox")[1, 1] == 1
    assert error_analysis.image_confusion(*args, iou_threshold=0.6)[1, 1] == 0
    # A crowd (negative id) is no ground truth: the detection on it is a
    # false positive, nothing is missed.
    matrix = error_analysis.image_confusion([-1], A[..., None],
                                            detection([A], [1], [0.9]), 2)
    np.testing.assert_array_equal(matrix, [[0, 1], [0, 0]])
    with pytest.raises(ValueError, match="iou_type"):
        error_analysis.image_confusion(*args, iou_type="keypoints")


def evaluated():
    """evaluate_model on two images: the hand-built one, and one whose
    single class-2 instance is found."""
    dataset = InMemoryDataset([(GT_MASKS, GT_IDS),
                               (B[..., None], [2])])
    model = FakeModel({0: hand_built_detection(),
                       1: detection([B], [2], [0.95])})
    return dataset, evaluate.evaluate_model(model, dataset, verbose=False)


def test_evaluate_model_adds_confusion_and_per_class_ap():
    _, metrics = evaluated()
    confusion = metrics["confusion"]
    np.testing.assert_array_equal(confusion["matrix"], [[0, 1, 1],
                                                        [1, 1, 0],
                                                        [0, 1, 1]])
    assert confusion["rows"] == ["false positive", "a", "b"]
    for kind in ("bbox", "segm"):
        per_class = metrics[kind]["per_class_AP50"]
        # Neither class is perfect: a has a duplicate and a miss, b a
        # false positive and an instance detected as a.
        assert set(per_class) == {"a", "b"}
        assert 0 < per_class["a"] < 1 and 0 < per_class["b"] < 1


def test_confusion_figure_shows_the_counts(tmp_path):
    _, metrics = evaluated()
    path = tmp_path / "confusion.png"
    fig = visualize.plot_confusion_matrix(metrics["confusion"],
                                          save_path=str(path))
    assert isinstance(fig, matplotlib.figure.Figure) and path.stat().st_size
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["0", "1", "1", "1", "1", "0", "0", "1", "1"]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "false positive", "a", "b"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["missed", "a",
                                                            "b"]
    shares = visualize.plot_confusion_matrix(metrics["confusion"],
                                             normalize=True)
    assert [t.get_text() for t in shares.axes[0].texts][3:6] == [
        "0.50", "0.50", "0.00"]


def test_per_class_ap_bars(tmp_path):
    per_class = {"bbox": {"a": 0.25, "b": 1.0, "c": -1.0},
                 "segm": {"a": 0.5, "b": 0.75, "c": -1.0}}
    path = tmp_path / "ap.png"
    fig = visualize.plot_per_class_ap(per_class, save_path=str(path))
    assert path.stat().st_size
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert heights == [0.25, 1.0, 0.0, 0.5, 0.75, 0.0]
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["0.25", "1.00", "n/a", "0.50", "0.75", "n/a"]
    single = visualize.plot_per_class_ap({"a": 0.4})
    assert [bar.get_height() for bar in single.axes[0].patches] == [0.4]
