"""Tests of the numpy helpers in mrcnn.utils.

Each helper is checked against hand-worked values or a brute-force numpy
reference written here (rasterized boxes, pixel counting, a plain O(n^2)
NMS), or through a round trip with its inverse.
"""
import os
import random
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest

from mrcnn import utils

RNG_SEED = 1234


def random_boxes(rng, count, size=20, allow_empty=False):
    """Integer pixel boxes (y1, x1, y2, x2) inside a size x size grid."""
    corners = rng.integers(0, size + 1, size=(count, 2, 2))
    lo = corners.min(axis=1)
    hi = corners.max(axis=1)
    if not allow_empty:
        hi = np.maximum(hi, lo + 1)
    return np.concatenate([lo, hi], axis=1)  # (y1, x1, y2, x2)


def raster(box, size=21):
    """The pixels of an exclusive-end pixel box on a grid."""
    grid = np.zeros((size, size), dtype=bool)
    y1, x1, y2, x2 = box
    grid[y1:y2, x1:x2] = True
    return grid


def raster_iou(box_a, box_b):
    a, b = raster(box_a), raster(box_b)
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 0.0


# ---------------------------------------------------------------- boxes

def test_extract_bboxes_matches_brute_force_and_edge_cases():
    rng = np.random.default_rng(RNG_SEED)
    masks = rng.random((17, 23, 6)) > 0.93
    masks[:, :, 2] = False  # an empty instance
    masks[:, :, 3] = False
    masks[0, 0, 3] = masks[16, 22, 3] = True  # touches both far borders
    boxes = utils.extract_bboxes(masks)
    assert boxes.dtype == np.int32 and boxes.shape == (6, 4)
    for i in range(6):
        ys, xs = np.nonzero(masks[:, :, i])
        if ys.size == 0:
            expected = [0, 0, 0, 0]
        else:
            expected = [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]
        assert boxes[i].tolist() == expected
    assert boxes[3].tolist() == [0, 0, 17, 23]


def test_extract_bboxes_single_pixel_and_no_instances():
    mask = np.zeros((5, 7, 1), dtype=np.uint8)
    mask[2, 4, 0] = 1
    assert utils.extract_bboxes(mask).tolist() == [[2, 4, 3, 5]]
    assert utils.extract_bboxes(np.zeros((5, 7, 0), bool)).shape == (0, 4)


def test_compute_overlaps_and_iou_match_rasterized_boxes():
    rng = np.random.default_rng(RNG_SEED)
    boxes1 = random_boxes(rng, 9, allow_empty=True)
    boxes2 = random_boxes(rng, 7, allow_empty=True)
    boxes2[0] = boxes1[0]  # identical pair
    boxes2[1] = [3, 3, 3, 8]  # zero area
    overlaps = utils.compute_overlaps(boxes1, boxes2)
    expected = np.array([[raster_iou(a, b) for b in boxes2] for a in boxes1])
    np.testing.assert_allclose(overlaps, expected, atol=1e-12)
    assert np.all(np.isfinite(overlaps))
    if raster(boxes1[0]).any():
        assert overlaps[0, 0] == pytest.approx(1.0)

    areas2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    for i, box in enumerate(boxes1):
        area = (box[2] - box[0]) * (box[3] - box[1])
        np.testing.assert_allclose(
            utils.compute_iou(box, boxes2, area, areas2), expected[i],
            atol=1e-12)


def test_compute_overlaps_hand_values_and_empty_inputs():
    # 10x10 box vs the same box shifted by 5 in x: 50 / 150.
    overlaps = utils.compute_overlaps([[0, 0, 10, 10]],
                                      [[0, 5, 10, 15], [20, 20, 30, 30]])
    np.testing.assert_allclose(overlaps, [[1 / 3, 0.0]])
    assert utils.compute_overlaps(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape \
        == (0, 1)


def test_compute_overlaps_masks_matches_pixel_counts():
    rng = np.random.default_rng(RNG_SEED)
    masks1 = rng.random((12, 11, 4)) > 0.5
    masks2 = rng.random((12, 11, 3)) > 0.6
    masks2[:, :, 0] = masks1[:, :, 1]
    masks1[:, :, 3] = False
    masks2[:, :, 2] = False  # empty vs empty -> 0, not NaN
    overlaps = utils.compute_overlaps_masks(masks1, masks2)
    for i in range(4):
        for j in range(3):
            a, b = masks1[:, :, i], masks2[:, :, j]
            union = np.logical_or(a, b).sum()
            expected = np.logical_and(a, b).sum() / union if union else 0
            assert overlaps[i, j] == pytest.approx(expected)
    assert overlaps[1, 0] == pytest.approx(1.0)


def test_compute_overlaps_masks_empty_sets_give_zero_matrix():
    masks = np.ones((4, 4, 3), bool)
    assert utils.compute_overlaps_masks(masks, np.zeros((4, 4, 0))).shape \
        == (3, 0)
    assert utils.compute_overlaps_masks(np.zeros((4, 4, 0)), masks).shape \
        == (0, 3)


def reference_nms(boxes, scores, threshold):
    """Plain greedy NMS: keep a box unless a kept box overlaps it too much."""
    kept = []
    for i in sorted(range(len(boxes)), key=lambda k: -scores[k]):
        if all(raster_iou(boxes[i], boxes[k]) <= threshold for k in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.7])
def test_non_max_suppression_matches_reference(threshold):
    rng = np.random.default_rng(RNG_SEED)
    boxes = random_boxes(rng, 40)
    scores = rng.permutation(40).astype(np.float32)  # distinct scores
    keep = utils.non_max_suppression(boxes, scores, threshold)
    assert keep.dtype == np.int32
    assert keep.tolist() == reference_nms(boxes, scores, threshold)


def test_non_max_suppression_hand_case_and_empty():
    boxes = np.array([[0, 0, 10, 10], [0, 1, 10, 11], [20, 20, 30, 30]])
    scores = np.array([0.9, 0.95, 0.5])
    # boxes 0 and 1 overlap with IoU 90/110 > 0.5: the better one (1) stays.
    assert utils.non_max_suppression(boxes, scores, 0.5).tolist() == [1, 2]
    assert utils.non_max_suppression(boxes, scores, 0.9).tolist() == [1, 0, 2]
    assert utils.non_max_suppression(np.zeros((0, 4)), np.zeros(0),
                                     0.5).shape == (0,)


def test_apply_box_deltas_hand_value():
    # Centre (5, 5) moves by (0.1 * 10, 0.2 * 10); height doubles.
    result = utils.apply_box_deltas(np.array([[0, 0, 10, 10]]),
                                    np.array([[0.1, 0.2, np.log(2.0), 0.0]]))
    np.testing.assert_allclose(result, [[-4, 2, 16, 12]], atol=1e-5)
    assert result.dtype == np.float32


def test_box_refinement_round_trip():
    rng = np.random.default_rng(RNG_SEED)
    boxes = random_boxes(rng, 30, size=100).astype(np.float32)
    gt = random_boxes(rng, 30, size=100).astype(np.float32)
    deltas = utils.box_refinement(boxes, gt)
    assert deltas.shape == (30, 4) and deltas.dtype == np.float32
    np.testing.assert_allclose(utils.apply_box_deltas(boxes, deltas), gt,
                               atol=1e-3)
    # Hand value: a box refined to itself shifted by half its height.
    np.testing.assert_allclose(
        utils.box_refinement(np.array([[0, 0, 10, 20]]),
                             np.array([[5, 0, 15, 40]])),
        [[0.5, 0.5, 0.0, np.log(2.0)]], atol=1e-6)


def test_norm_denorm_boxes_hand_values_and_round_trip():
    shape = (11, 21)
    np.testing.assert_allclose(
        utils.norm_boxes(np.array([[0, 0, 11, 21], [5, 10, 6, 11]]), shape),
        [[0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5]])
    rng = np.random.default_rng(RNG_SEED)
    boxes = random_boxes(rng, 25, size=11)
    boxes[:, [1, 3]] *= 2
    normalized = utils.norm_boxes(boxes, shape)
    assert normalized.dtype == np.float32
    back = utils.denorm_boxes(normalized, shape)
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, boxes)


def test_trim_zeros():
    x = np.array([[0, 0, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 5]])
    np.testing.assert_array_equal(utils.trim_zeros(x), x[[1, 3]])
    with pytest.raises(ValueError, match="2D"):
        utils.trim_zeros(np.zeros(4))


# ---------------------------------------------------------------- resizing

def test_resize_image_none_mode_returns_input():
    image = np.arange(30 * 40 * 3, dtype=np.uint8).reshape(30, 40, 3)
    out, window, scale, padding, crop = utils.resize_image(
        image, min_dim=64, max_dim=128, mode="none")
    assert out is image or np.array_equal(out, image)
    assert window == (0, 0, 30, 40) and scale == 1 and crop is None
    assert padding == [(0, 0), (0, 0), (0, 0)]


def test_resize_image_square_without_scaling_keeps_pixels():
    rng = np.random.default_rng(RNG_SEED)
    image = rng.integers(1, 256, size=(31, 40, 3)).astype(np.uint8)
    out, window, scale, padding, crop = utils.resize_image(
        image, max_dim=64, mode="square")
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert scale == 1 and crop is None
    # 33 rows of padding: the odd one goes to the bottom.
    assert window == (16, 12, 47, 52)
    assert padding == [(16, 17), (12, 12), (0, 0)]
    y1, x1, y2, x2 = window
    np.testing.assert_array_equal(out[y1:y2, x1:x2], image)
    outside = np.ones((64, 64), bool)
    outside[y1:y2, x1:x2] = False
    assert not out[outside].any()


def test_resize_image_square_upscales_to_min_dim():
    image = np.full((50, 100, 3), 200, dtype=np.uint8)
    out, window, scale, padding, _ = utils.resize_image(
        image, min_dim=64, max_dim=128, mode="square")
    assert scale == pytest.approx(64 / 50)
    assert out.shape == (128, 128, 3)
    assert window == (32, 0, 96, 128)
    assert padding == [(32, 32), (0, 0), (0, 0)]
    assert np.all(out[32:96] == 200) and not out[:32].any() \
        and not out[96:].any()


def test_resize_image_square_max_dim_wins_over_min_dim():
    image = np.ones((40, 200, 3), dtype=np.float32)
    out, window, scale, _, _ = utils.resize_image(
        image, min_dim=64, max_dim=128, mode="square")
    assert scale == pytest.approx(128 / 200)
    assert out.dtype == np.float32 and out.shape == (128, 128, 3)
    # 40 * 0.64 = 25.6 -> 26 rows, centred: (128 - 26) // 2 = 51
    assert window == (51, 0, 77, 128)
    np.testing.assert_allclose(out[51:77], 1.0)


def test_resize_image_min_scale():
    image = np.full((32, 32, 3), 7, dtype=np.uint8)
    out, window, scale, _, _ = utils.resize_image(
        image, max_dim=128, min_scale=2, mode="square")
    assert scale == 2
    assert window == (32, 32, 96, 96)
    assert np.all(out[32:96, 32:96] == 7)


def test_resize_image_pad64():
    rng = np.random.default_rng(RNG_SEED)
    image = rng.integers(1, 256, size=(71, 130, 3)).astype(np.uint8)
    out, window, scale, padding, crop = utils.resize_image(
        image, min_dim=64, max_dim=1024, mode="pad64")
    assert scale == 1 and crop is None
    assert out.shape == (128, 192, 3)
    # 57 rows (odd one at the bottom) and 62 columns of padding.
    assert padding == [(28, 29), (31, 31), (0, 0)]
    assert window == (28, 31, 99, 161)
    np.testing.assert_array_equal(out[28:99, 31:161], image)
    with pytest.raises(ValueError, match="multiple of 64"):
        utils.resize_image(image, min_dim=100, mode="pad64")


def test_resize_image_pad64_already_aligned():
    image = np.ones((64, 128, 3), np.uint8)
    out, window, _, padding, _ = utils.resize_image(image, min_dim=64,
                                                    mode="pad64")
    assert out.shape == (64, 128, 3) and window == (0, 0, 64, 128)
    assert padding == [(0, 0), (0, 0), (0, 0)]


def test_resize_image_crop_is_a_window_of_the_image():
    rng = np.random.default_rng(RNG_SEED)
    image = rng.integers(0, 256, size=(100, 80, 3)).astype(np.uint8)
    random.seed(3)
    out, window, scale, padding, crop = utils.resize_image(
        image, min_dim=64, mode="crop")
    assert out.shape == (64, 64, 3) and scale == 1
    assert window == (0, 0, 64, 64)
    y, x, h, w = crop
    assert (h, w) == (64, 64) and 0 <= y <= 36 and 0 <= x <= 16
    np.testing.assert_array_equal(out, image[y:y + 64, x:x + 64])


def test_resize_image_rejects_unknown_mode():
    with pytest.raises(ValueError, match="not supported"):
        utils.resize_image(np.zeros((8, 8, 3)), mode="stretch")


def test_resize_wrapper_defaults_to_no_antialiasing():
    # Nearest-neighbour halving of a checkerboard without anti-aliasing
    # keeps pure 0/1 values; a smoothed result would contain greys.
    board = (np.indices((8, 8)).sum(axis=0) % 2).astype(np.float64)
    small = utils.resize(board, (4, 4), order=0)
    assert set(np.unique(small)) <= {0.0, 1.0}
    out = utils.resize(np.full((4, 4), 200, np.uint8), (8, 8),
                       preserve_range=True)
    np.testing.assert_allclose(out, 200)


def test_resize_mask_follows_resize_image():
    mask = np.zeros((50, 100, 2), dtype=bool)
    mask[10:20, 30:60, 0] = True
    mask[0:50, 90:100, 1] = True  # touches the border
    image = np.zeros((50, 100, 3), np.uint8)
    out, window, scale, padding, crop = utils.resize_image(
        image, min_dim=64, max_dim=128, mode="square")
    resized = utils.resize_mask(mask, scale, padding, crop)
    assert resized.dtype == bool
    assert resized.shape == out.shape[:2] + (2,)
    y1, x1, y2, x2 = window
    outside = np.ones(resized.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    assert not resized[outside].any()
    # Areas scale by scale^2 (within a row/column of rounding).
    for i in range(2):
        ratio = resized[:, :, i].sum() / mask[:, :, i].sum()
        assert ratio == pytest.approx(scale ** 2, rel=0.1)
    boxes = utils.extract_bboxes(resized)
    assert boxes[1].tolist()[0] == y1 and boxes[1].tolist()[2] == y2
    assert boxes[1].tolist()[3] == x2


def test_resize_mask_integer_zoom_is_pixel_repeat():
    mask = np.zeros((3, 3, 1), bool)
    mask[0, 1, 0] = mask[2, 2, 0] = True
    resized = utils.resize_mask(mask, 2, [(1, 0), (0, 2), (0, 0)])
    expected = np.repeat(np.repeat(mask, 2, axis=0), 2, axis=1)
    expected = np.pad(expected, [(1, 0), (0, 2), (0, 0)])
    np.testing.assert_array_equal(resized, expected)


def test_resize_mask_crop():
    mask = np.zeros((10, 10, 1), bool)
    mask[4:6, 4:6] = True
    resized = utils.resize_mask(mask, 1, None, crop=(3, 2, 5, 5))
    assert resized.shape == (5, 5, 1)
    np.testing.assert_array_equal(resized, mask[3:8, 2:7])


# ---------------------------------------------------------------- masks

def ellipse_masks(shape):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    first = ((yy - 20) / 12.0) ** 2 + ((xx - 30) / 20.0) ** 2 <= 1
    second = np.zeros(shape, bool)
    second[40:64, 50:64] = True  # rectangle touching the corner
    return np.stack([first, second], axis=-1)


def test_minimize_expand_round_trip():
    masks = ellipse_masks((64, 64))
    boxes = utils.extract_bboxes(masks)
    mini = utils.minimize_mask(boxes, masks, (28, 28))
    assert mini.shape == (28, 28, 2) and mini.dtype == bool
    assert mini[:, :, 1].all()  # a rectangle fills its box
    full = utils.expand_mask(boxes, mini, (64, 64, 3))
    assert full.shape == (64, 64, 2) and full.dtype == bool
    np.testing.assert_array_equal(full[:, :, 1], masks[:, :, 1])
    iou = utils.compute_overlaps_masks(full[:, :, :1], masks[:, :, :1])
    assert iou[0, 0] > 0.9


def test_minimize_mask_zero_area_box_raises_clear_error():
    masks = ellipse_masks((64, 64))
    masks[:, :, 1] = False
    boxes = utils.extract_bboxes(masks)
    with pytest.raises(ValueError, match="instance 1 .*zero area"):
        utils.minimize_mask(boxes, masks, (28, 28))


def test_expand_mask_zero_area_box_gives_empty_instance():
    mini = np.ones((28, 28, 2), bool)
    boxes = np.array([[0, 0, 0, 0], [2, 3, 6, 9]])
    full = utils.expand_mask(boxes, mini, (10, 12))
    assert not full[:, :, 0].any()
    assert full[:, :, 1].sum() == 4 * 6 and full[2:6, 3:9, 1].all()


def test_unmold_mask():
    mask = np.zeros((28, 28), np.float32)
    mask[:, :14] = 0.9  # left half on
    full = utils.unmold_mask(mask, (10, 20, 30, 50), (64, 64, 3))
    assert full.shape == (64, 64) and full.dtype == bool
    expected = np.zeros((64, 64), bool)
    expected[10:30, 20:35] = True
    np.testing.assert_array_equal(full, expected)
    assert not utils.unmold_mask(mask, (5, 5, 5, 9), (64, 64)).any()


# ---------------------------------------------------------------- anchors

def test_generate_anchors_hand_values():
    anchors = utils.generate_anchors(16, [1], [2, 2], 8, 1)
    np.testing.assert_allclose(anchors, [[-8, -8, 8, 8], [-8, 0, 8, 16],
                                         [0, -8, 16, 8], [0, 0, 16, 16]])


def test_generate_anchors_ratios_order_and_stride():
    # Two ratios at each cell, anchors every second cell of a 3x3 map.
    anchors = utils.generate_anchors(8, [0.5, 2], [3, 3], 4, 2)
    assert anchors.shape == (4 * 2, 4)
    heights = anchors[:, 2] - anchors[:, 0]
    widths = anchors[:, 3] - anchors[:, 1]
    np.testing.assert_allclose(widths / heights, [0.5, 2] * 4)
    np.testing.assert_allclose(heights * widths, 64)
    centers = (anchors[:, :2] + anchors[:, 2:]) / 2
    np.testing.assert_allclose(
        centers[::2], [[0, 0], [0, 8], [8, 0], [8, 8]])


def test_generate_pyramid_anchors_count_and_levels():
    shapes = np.array([[16, 16], [8, 8], [4, 4]])
    anchors = utils.generate_pyramid_anchors(
        (8, 16, 32), [0.5, 1, 2], shapes, [4, 8, 16], 1)
    assert anchors.shape == ((256 + 64 + 16) * 3, 4)
    sides = np.sqrt((anchors[:, 2] - anchors[:, 0])
                    * (anchors[:, 3] - anchors[:, 1]))
    np.testing.assert_allclose(sides[:768], 8)
    np.testing.assert_allclose(sides[768:960], 16)
    np.testing.assert_allclose(sides[960:], 32)
    # The last anchor is centred on the last cell of the last level.
    np.testing.assert_allclose((anchors[-1, :2] + anchors[-1, 2:]) / 2,
                               [48, 48])


# ---------------------------------------------------------------- evaluation

def square_masks(boxes, shape=(32, 32)):
    """Masks filling each (y1, x1, y2, x2) box."""
    masks = np.zeros(shape + (len(boxes),), bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return masks


GT_BOXES = np.array([[0, 0, 10, 10], [15, 15, 30, 30]])
GT_CLASSES = np.array([1, 2])
FALSE_BOX = [0, 20, 8, 30]  # overlaps no ground truth


def ap_of(pred_boxes, pred_classes, pred_scores, gt_boxes=GT_BOXES,
          gt_classes=GT_CLASSES, iou_threshold=0.5):
    pred_boxes = np.array(pred_boxes).reshape(-1, 4)
    return utils.compute_ap(
        gt_boxes, gt_classes, square_masks(gt_boxes),
        pred_boxes, np.array(pred_classes), np.array(pred_scores),
        square_masks(pred_boxes), iou_threshold=iou_threshold)


def test_compute_ap_perfect_detections():
    ap, precisions, recalls, overlaps = ap_of(GT_BOXES, [1, 2], [0.9, 0.8])
    assert ap == pytest.approx(1.0)
    np.testing.assert_allclose(np.diag(overlaps), 1.0)
    np.testing.assert_allclose(recalls, [0, 0.5, 1, 1])


def test_compute_ap_false_positive_ranked_first():
    # Ranked: FP, TP, TP -> precision 0, 1/2, 2/3 at recall 0, 1/2, 1;
    # interpolated precision is 2/3 everywhere, so AP = 2/3.
    ap, precisions, recalls, _ = ap_of(
        [FALSE_BOX, GT_BOXES[0], GT_BOXES[1]], [1, 1, 2], [0.99, 0.8, 0.7])
    assert ap == pytest.approx(2 / 3)
    np.testing.assert_allclose(precisions, [2 / 3, 2 / 3, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(recalls, [0, 0, 0.5, 1, 1])


def test_compute_ap_false_positive_in_the_middle_and_last():
    # TP, FP, TP: 0.5 * 1 + 0.5 * 2/3
    ap, *_ = ap_of([GT_BOXES[0], FALSE_BOX, GT_BOXES[1]], [1, 1, 2],
                   [0.9, 0.8, 0.7])
    assert ap == pytest.approx(0.5 + 1 / 3)
    ap, *_ = ap_of([GT_BOXES[0], GT_BOXES[1], FALSE_BOX], [1, 2, 1],
                   [0.9, 0.8, 0.7])
    assert ap == pytest.approx(1.0)


def test_compute_ap_wrong_class_and_missed_object():
    ap, *_ = ap_of(GT_BOXES, [2, 1], [0.9, 0.8])  # classes swapped
    assert ap == pytest.approx(0.0)
    ap, *_ = ap_of(GT_BOXES[:1], [1], [0.9])  # one of two found
    assert ap == pytest.approx(0.5)


def test_compute_ap_no_predictions_or_no_ground_truth():
    ap, *_ = ap_of(np.zeros((0, 4), int), [], [])
    assert ap == 0.0
    ap, _, recalls, _ = ap_of([[0, 0, 5, 5]], [1], [0.5],
                              gt_boxes=np.zeros((0, 4), int),
                              gt_classes=np.zeros(0, int))
    assert ap == 0.0 and np.all(np.isfinite(recalls))


def test_compute_matches_duplicate_detection_and_padding():
    pred_boxes = np.array([GT_BOXES[0], GT_BOXES[0], [0, 0, 0, 0]])
    pred_masks = square_masks(pred_boxes)
    gt_boxes = np.concatenate([GT_BOXES, np.zeros((1, 4), int)])  # padded
    gt_match, pred_match, overlaps = utils.compute_matches(
        gt_boxes, np.array([1, 2, 0]), square_masks(gt_boxes),
        pred_boxes, np.array([1, 1, 0]), np.array([0.6, 0.9, 0.0]),
        pred_masks)
    # Padding rows are trimmed; the better-scored duplicate takes the match.
    assert overlaps.shape == (2, 2)
    assert pred_match.tolist() == [0, -1]
    assert gt_match.tolist() == [0, -1]


def test_compute_matches_score_threshold_drops_weak_overlaps():
    # matterport applies score_threshold to the IoU of the candidates.
    pred_boxes = np.array([[0, 0, 10, 10]])
    gt_boxes = np.array([[0, 0, 10, 11]])  # IoU 100 / 110
    args = (gt_boxes, np.array([1]), square_masks(gt_boxes), pred_boxes,
            np.array([1]), np.array([0.9]), square_masks(pred_boxes))
    gt_match, pred_match, _ = utils.compute_matches(*args)
    assert pred_match.tolist() == [0] and gt_match.tolist() == [0]
    gt_match, pred_match, _ = utils.compute_matches(*args,
                                                    score_threshold=0.95)
    assert pred_match.tolist() == [-1] and gt_match.tolist() == [-1]


def test_compute_ap_range_partial_overlap(capsys):
    gt_mask = square_masks(GT_BOXES[:1])
    pred_mask = gt_mask.copy()
    # Drop 22 of the 100 pixels: IoU 0.78, matched at 0.50 ... 0.75 only.
    ys, xs = np.nonzero(gt_mask[:, :, 0])
    pred_mask[ys[:22], xs[:22], 0] = False
    mean_ap = utils.compute_ap_range(
        GT_BOXES[:1], np.array([1]), gt_mask, GT_BOXES[:1], np.array([1]),
        np.array([0.9]), pred_mask, verbose=1)
    assert mean_ap == pytest.approx(6 / 10)
    printed = capsys.readouterr().out
    assert "AP @0.50-0.95" in printed and printed.count("AP @") == 11
    mean_ap = utils.compute_ap_range(
        GT_BOXES[:1], np.array([1]), gt_mask, GT_BOXES[:1], np.array([1]),
        np.array([0.9]), pred_mask, iou_thresholds=[0.5, 0.8], verbose=0)
    assert mean_ap == pytest.approx(0.5)
    assert capsys.readouterr().out == ""


def test_compute_recall():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]])
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 25],
                     [60, 60, 70, 70]])
    # IoUs with best gt: 1.0, 0.9, 0.5, 0 -> two gt boxes found at 0.5.
    recall, positive_ids = utils.compute_recall(pred, gt, 0.5)
    assert recall == pytest.approx(2 / 3)
    assert positive_ids.tolist() == [0, 1, 2]
    recall, positive_ids = utils.compute_recall(pred, gt, 0.95)
    assert recall == pytest.approx(1 / 3) and positive_ids.tolist() == [0]


# ---------------------------------------------------------------- TF helper

def test_batch_slice_single_and_multiple_outputs():
    tf = pytest.importorskip("tensorflow")
    x = tf.constant(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    y = tf.constant([[1.0], [2.0]])
    total = utils.batch_slice(x, lambda a: tf.reduce_sum(a), 2)
    np.testing.assert_allclose(total.numpy(), [66, 210])
    scaled, rows = utils.batch_slice(
        [x, y], lambda a, b: (a * b, tf.shape(a)[0]), 2, names=["s", "r"])
    np.testing.assert_allclose(scaled.numpy(),
                               x.numpy() * np.array([1, 2])[:, None, None])
    assert rows.numpy().tolist() == [3, 3]


def test_import_does_not_load_tensorflow():
    code = ("import sys, mrcnn.utils; "
            "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], cwd=root,
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()


# ---------------------------------------------------------------- download

def test_download_trained_weights_offline_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    target = tmp_path / "weights" / "mask_rcnn_coco.h5"
    with pytest.raises(OSError) as info:
        utils.download_trained_weights(str(target), verbose=0)
    message = str(info.value)
    assert utils.COCO_MODEL_URL in message and str(target) in message
    assert isinstance(info.value, utils.WeightsDownloadError)
    assert list(target.parent.iterdir()) == []  # no partial file left
    # Truncated, wrong and stalled downloads: tests/test_download.py.
