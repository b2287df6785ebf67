"""Tests of mrcnn.data: image meta, load_image_gt, RPN and detection targets,
data_generator and the MaskRCNNDataset feed, on tiny synthetic data."""
import logging
import threading

import numpy as np
import pytest

from mrcnn import data, utils
from mrcnn.config import Config


class TinyConfig(Config):
    NAME = "tiny"
    NUM_CLASSES = 3  # background, square, bar
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    MINI_MASK_SHAPE = (14, 14)
    MAX_GT_INSTANCES = 4
    TRAIN_ROIS_PER_IMAGE = 8
    POST_NMS_ROIS_TRAINING = 20


def make_config(**overrides):
    config_class = type("Tiny", (TinyConfig,), overrides)
    return config_class()


class RectanglesDataset(utils.Dataset):
    """In-memory images of filled rectangles: red is 200 inside every
    rectangle and 0 elsewhere, green is 50 x class id, blue is 30.

    specs: per image, (height, width, [(class_id, (y1, x1, y2, x2)), ...]).
    """

    def __init__(self, specs, source="rects"):
        super().__init__()
        self.add_class(source, 1, "square")
        self.add_class(source, 2, "bar")
        for i, (height, width, shapes) in enumerate(specs):
            self.add_image(source, image_id=i, path=None, height=height,
                           width=width, shapes=shapes)
        self.prepare()

    def image_reference(self, image_id):
        return "rect-image-{}".format(image_id)

    def load_image(self, image_id):
        info = self.image_info[image_id]
        image = np.zeros((info["height"], info["width"], 3), np.uint8)
        image[..., 2] = 30
        for class_id, (y1, x1, y2, x2) in info["shapes"]:
            image[y1:y2, x1:x2, 0] = 200
            image[y1:y2, x1:x2, 1] = 50 * class_id
        return image

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        shapes = info["shapes"]
        mask = np.zeros((info["height"], info["width"], len(shapes)), bool)
        for i, (_, (y1, x1, y2, x2)) in enumerate(shapes):
            mask[y1:y2, x1:x2, i] = True
        class_ids = np.array([c for c, _ in shapes], np.int32)
        return mask, class_ids


def random_specs(count, seed, height=64, width=64, max_shapes=3):
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(count):
        shapes = []
        for _ in range(rng.integers(1, max_shapes + 1)):
            y1, x1 = rng.integers(0, height - 12), rng.integers(0, width - 12)
            h, w = rng.integers(6, 12, size=2)
            shapes.append((int(rng.integers(1, 3)),
                           (int(y1), int(x1), int(y1 + h), int(x1 + w))))
        specs.append((height, width, shapes))
    return specs


# ---------------------------------------------------------------- meta, mold

def test_image_meta_round_trip():
    meta = data.compose_image_meta(7, (480, 640, 3), (64, 64, 3),
                                   (8, 0, 56, 64), 0.1, [1, 0, 1])
    assert meta.shape == (12 + 3,)
    batch = np.stack([meta, meta + 0])
    parsed = data.parse_image_meta(batch)
    np.testing.assert_array_equal(parsed["image_id"], [7, 7])
    np.testing.assert_array_equal(parsed["original_image_shape"][0],
                                  [480, 640, 3])
    np.testing.assert_array_equal(parsed["image_shape"][1], [64, 64, 3])
    np.testing.assert_array_equal(parsed["window"][0], [8, 0, 56, 64])
    np.testing.assert_allclose(parsed["scale"], [0.1, 0.1], rtol=1e-6)
    np.testing.assert_array_equal(parsed["active_class_ids"][0], [1, 0, 1])
    assert parsed["window"].dtype == np.int32
    assert parsed["scale"].dtype == np.float32
    single = data.parse_image_meta(meta)
    assert single["image_id"] == 7 and single["window"].shape == (4,)
    with pytest.raises(ValueError, match="image meta"):
        data.parse_image_meta(np.zeros((2, 5)))


def test_mold_unmold_round_trip_all_pixel_values():
    config = TinyConfig()
    image = np.arange(256, dtype=np.uint8)[:, None, None] * np.ones(
        (1, 4, 3), np.uint8)
    molded = data.mold_image(image, config)
    assert molded.dtype == np.float32
    np.testing.assert_allclose(molded[200, 0], 200 - config.MEAN_PIXEL,
                               rtol=1e-6)
    restored = data.unmold_image(molded, config)
    assert restored.dtype == np.uint8
    np.testing.assert_array_equal(restored, image)


def test_compute_backbone_shapes():
    config = TinyConfig()
    shapes = data.compute_backbone_shapes(config, (64, 96, 3))
    np.testing.assert_array_equal(shapes, [[16, 24], [8, 12], [4, 6], [2, 3],
                                           [1, 2]])

    def custom_shapes(image_shape):
        return np.array([[image_shape[0] // 2, image_shape[1] // 2]] * 5)

    custom = make_config(BACKBONE=lambda *a: None,
                         COMPUTE_BACKBONE_SHAPE=staticmethod(custom_shapes))
    np.testing.assert_array_equal(
        data.compute_backbone_shapes(custom, (64, 64, 3))[0], [32, 32])


# ------------------------------------------------------------ load_image_gt

def test_load_image_gt_padding_only_is_exact():
    # 48x64 image: scale 1, 8 rows of padding at the top in square mode.
    shapes = [(1, (0, 0, 10, 20)),      # touches the top-left corner
              (2, (30, 50, 48, 64)),    # touches the bottom-right corner
              (1, (20, 10, 31, 17))]
    dataset = RectanglesDataset([(48, 64, shapes)])
    config = TinyConfig()
    image, meta, class_ids, bbox, mask = data.load_image_gt(
        dataset, config, 0)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(class_ids, [1, 2, 1])
    expected = np.array([[y1 + 8, x1, y2 + 8, x2]
                         for _, (y1, x1, y2, x2) in shapes])
    np.testing.assert_array_equal(bbox, expected)
    assert mask.shape == (64, 64, 3) and mask.dtype == bool
    for i, (y1, x1, y2, x2) in enumerate(expected):
        drawn = np.zeros((64, 64), bool)
        drawn[y1:y2, x1:x2] = True
        np.testing.assert_array_equal(mask[..., i], drawn)
    # The image moved with the masks: red is 200 exactly on the rectangles.
    np.testing.assert_array_equal(image[..., 0] == 200, mask.any(axis=-1))
    parsed = data.parse_image_meta(meta[None])
    np.testing.assert_array_equal(parsed["window"][0], [8, 0, 56, 64])
    np.testing.assert_array_equal(parsed["original_image_shape"][0],
                                  [48, 64, 3])
    assert parsed["scale"][0] == 1
    np.testing.assert_array_equal(parsed["active_class_ids"][0], [1, 1, 1])


def test_load_image_gt_scaled_and_mini_masks():
    # 24x32 -> scale 2 (long side 64), 48x64 inside 8 rows of padding.
    shapes = [(1, (2, 4, 12, 14)), (2, (14, 20, 24, 32))]
    dataset = RectanglesDataset([(24, 32, shapes)])
    config = TinyConfig()
    _, meta, class_ids, bbox, mask = data.load_image_gt(dataset, config, 0)
    assert data.parse_image_meta(meta)["scale"] == 2
    expected = np.array([[2 * y1 + 8, 2 * x1, 2 * y2 + 8, 2 * x2]
                         for _, (y1, x1, y2, x2) in shapes])
    # Nearest-neighbour zoom may shift an edge by one pixel.
    assert np.abs(bbox - expected).max() <= 1
    np.testing.assert_array_equal(class_ids, [1, 2])

    _, _, mini_ids, mini_bbox, mini = data.load_image_gt(
        dataset, config, 0, use_mini_mask=True)
    np.testing.assert_array_equal(mini_bbox, bbox)
    np.testing.assert_array_equal(mini_ids, class_ids)
    assert mini.shape == (14, 14, 2) and mini.dtype == bool
    assert mini.all()  # a filled rectangle fills its box
    np.testing.assert_array_equal(
        utils.expand_mask(mini_bbox, mini, (64, 64, 3)), mask)


def test_load_image_gt_non_rectangular_mini_mask():
    class DiskDataset(RectanglesDataset):
        def load_mask(self, image_id):
            yy, xx = np.mgrid[:64, :64]
            disk = (yy - 30) ** 2 + (xx - 20) ** 2 < 15 ** 2
            return disk[..., None], np.array([1], np.int32)

    dataset = DiskDataset([(64, 64, [(1, (0, 0, 1, 1))])])
    _, _, _, bbox, mini = data.load_image_gt(dataset, TinyConfig(), 0,
                                             use_mini_mask=True)
    np.testing.assert_array_equal(bbox, [[16, 6, 45, 35]])
    expanded = utils.expand_mask(bbox, mini, (64, 64))[..., 0]
    yy, xx = np.mgrid[:64, :64]
    disk = (yy - 30) ** 2 + (xx - 20) ** 2 < 15 ** 2
    iou = (expanded & disk).sum() / (expanded | disk).sum()
    assert iou > 0.9
    assert not mini[0, 0, 0] and mini[7, 7, 0]  # corner out, centre in


def test_load_image_gt_without_instances():
    dataset = RectanglesDataset([(64, 64, [])])
    image, meta, class_ids, bbox, mask = data.load_image_gt(
        dataset, TinyConfig(), 0)
    assert image.shape == (64, 64, 3)
    assert class_ids.shape == (0,) and bbox.shape == (0, 4)
    assert mask.shape == (64, 64, 0)
    _, _, _, _, mini = data.load_image_gt(dataset, TinyConfig(), 0,
                                          use_mini_mask=True)
    assert mini.shape == (14, 14, 0)


def test_load_image_gt_drops_empty_masks_keeping_class_ids():
    class WithEmpty(RectanglesDataset):
        def load_mask(self, image_id):
            mask, class_ids = super().load_mask(image_id)
            mask[..., 1] = False
            return mask, class_ids

    shapes = [(1, (0, 0, 8, 8)), (2, (10, 10, 20, 20)), (2, (30, 30, 40, 44))]
    dataset = WithEmpty([(64, 64, shapes)])
    _, _, class_ids, bbox, mask = data.load_image_gt(dataset, TinyConfig(), 0)
    np.testing.assert_array_equal(class_ids, [1, 2])
    np.testing.assert_array_equal(bbox, [[0, 0, 8, 8], [30, 30, 40, 44]])
    assert mask.shape[-1] == 2


def test_load_image_gt_rejects_inconsistent_masks():
    class BadCount(RectanglesDataset):
        def load_mask(self, image_id):
            mask, class_ids = super().load_mask(image_id)
            return mask, class_ids[:1]

    class BadSize(RectanglesDataset):
        def load_mask(self, image_id):
            mask, class_ids = super().load_mask(image_id)
            return mask[:-1], class_ids

    specs = [(64, 64, [(1, (0, 0, 8, 8)), (2, (10, 10, 20, 20))])]
    with pytest.raises(ValueError, match=r"rect-image-0.*2 masks but 1 class"):
        data.load_image_gt(BadCount(specs), TinyConfig(), 0)
    with pytest.raises(ValueError, match=r"rect-image-0.*63x64.*64x64"):
        data.load_image_gt(BadSize(specs), TinyConfig(), 0)


# ---------------------------------------------------------------- RPN targets

def brute_force_labels(anchors, class_ids, boxes, positive_iou=0.7,
                       negative_iou=0.3):
    """Matterport's rule on the full IoU matrix, written out independently."""
    anchors = anchors.astype(np.float64)
    boxes = boxes.astype(np.float64)

    def iou_matrix(a, b):
        y1 = np.maximum(a[:, None, 0], b[None, :, 0])
        x1 = np.maximum(a[:, None, 1], b[None, :, 1])
        y2 = np.minimum(a[:, None, 2], b[None, :, 2])
        x2 = np.minimum(a[:, None, 3], b[None, :, 3])
        inter = np.clip(y2 - y1, 0, None) * np.clip(x2 - x1, 0, None)
        area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
        area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        return inter / (area_a[:, None] + area_b[None, :] - inter)

    labels = np.zeros(len(anchors), np.int32)
    crowd = class_ids < 0
    no_crowd = np.ones(len(anchors), bool)
    if crowd.any():
        no_crowd = iou_matrix(anchors, boxes[crowd]).max(axis=1) < 0.001
        boxes = boxes[class_ids > 0]
    if len(boxes) == 0:
        labels[no_crowd] = -1
        return labels, None, boxes
    overlaps = iou_matrix(anchors, boxes)
    best_gt = overlaps.argmax(axis=1)
    anchor_max = overlaps.max(axis=1)
    labels[(anchor_max < negative_iou) & no_crowd] = -1
    for j in range(len(boxes)):
        labels[overlaps[:, j] == overlaps[:, j].max()] = 1
    labels[anchor_max >= positive_iou] = 1
    return labels, best_gt, boxes


def reference_deltas(anchors, gt):
    a_h, a_w = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    g_h, g_w = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    deltas = np.stack([
        (gt[:, 0] + 0.5 * g_h - anchors[:, 0] - 0.5 * a_h) / a_h,
        (gt[:, 1] + 0.5 * g_w - anchors[:, 1] - 0.5 * a_w) / a_w,
        np.log(g_h / a_h), np.log(g_w / a_w)], axis=1)
    return deltas / np.array([0.1, 0.1, 0.2, 0.2])


def random_gt(rng, image_size, count, crowd=False):
    """Boxes of all sizes (1 px to beyond the image), clipped to the image."""
    cy, cx = rng.uniform(-10, image_size + 10, (2, count))
    h = np.exp(rng.uniform(0, np.log(2 * image_size), count))
    w = h * np.exp(rng.uniform(-2, 2, count))
    boxes = np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], 1)
    boxes = np.round(np.clip(boxes, 0, image_size)).astype(np.int32)
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    class_ids = rng.integers(1, 3, len(boxes)).astype(np.int32)
    if crowd and len(boxes) > 1:
        class_ids[rng.choice(len(boxes), max(1, len(boxes) // 4),
                             replace=False)] = -1
    return class_ids, boxes


def tiny_anchors(config):
    shapes = data.compute_backbone_shapes(config, config.IMAGE_SHAPE)
    return utils.generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, shapes,
        config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)


def check_against_brute_force(anchors, class_ids, boxes, config):
    """No subsampling (room for every anchor): labels and deltas exact."""
    rpn_match, rpn_bbox = data.build_rpn_targets(
        config.IMAGE_SHAPE, anchors, class_ids, boxes, config, rng=0)
    labels, best_gt, gt = brute_force_labels(
        anchors, class_ids, boxes, config.RPN_POSITIVE_IOU,
        config.RPN_NEGATIVE_IOU)
    np.testing.assert_array_equal(rpn_match, labels)
    positives = np.flatnonzero(labels == 1)
    expected = np.zeros_like(rpn_bbox)
    if len(positives):
        expected[:len(positives)] = reference_deltas(
            anchors[positives], gt[best_gt[positives]])
    np.testing.assert_allclose(rpn_bbox, expected, rtol=1e-4, atol=1e-4)
    return labels


def test_rpn_targets_match_brute_force_on_random_cases():
    config = make_config(RPN_TRAIN_ANCHORS_PER_IMAGE=4096)
    anchors = tiny_anchors(config)
    assert 2 * len(anchors) <= 4096  # no subsampling in this test
    rng = np.random.default_rng(1234)
    seen = set()
    for case in range(150):
        class_ids, boxes = random_gt(rng, 64, int(rng.integers(0, 12)),
                                     crowd=case % 3 == 0)
        labels = check_against_brute_force(anchors, class_ids, boxes, config)
        seen.update(np.unique(labels).tolist())
    assert seen == {-1, 0, 1}


@pytest.mark.parametrize("positive_iou, negative_iou", [
    (0.5, 0.3), (0.6, 0.4), (0.4, 0.1)])
def test_rpn_targets_with_other_iou_thresholds(positive_iou, negative_iou):
    config = make_config(RPN_TRAIN_ANCHORS_PER_IMAGE=4096,
                         RPN_POSITIVE_IOU=positive_iou,
                         RPN_NEGATIVE_IOU=negative_iou)
    anchors = tiny_anchors(config)
    rng = np.random.default_rng(99)
    positives = []
    for case in range(40):
        class_ids, boxes = random_gt(rng, 64, int(rng.integers(1, 8)),
                                     crowd=case % 4 == 0)
        labels = check_against_brute_force(anchors, class_ids, boxes, config)
        positives.append((labels == 1).sum())
    # Lower thresholds than the default must change the labels.
    default = make_config(RPN_TRAIN_ANCHORS_PER_IMAGE=4096)
    rng = np.random.default_rng(99)
    default_positives = [
        (data.build_rpn_targets(default.IMAGE_SHAPE, anchors, *random_gt(
            rng, 64, int(rng.integers(1, 8)), crowd=case % 4 == 0),
            default, rng=0)[0] == 1).sum() for case in range(40)]
    assert sum(positives) > sum(default_positives)


def test_rpn_iou_thresholds_are_validated():
    with pytest.raises(ValueError, match="RPN_NEGATIVE_IOU"):
        make_config(RPN_POSITIVE_IOU=0.3, RPN_NEGATIVE_IOU=0.5)


def test_rpn_targets_special_cases():
    config = make_config(RPN_TRAIN_ANCHORS_PER_IMAGE=4096)
    anchors = tiny_anchors(config)
    cases = [
        ([], np.zeros((0, 4))),                       # no GT at all
        ([-1], [[0, 0, 64, 64]]),                      # only a crowd
        ([1], [[0, 0, 64, 64]]),                       # the whole image
        ([1], [[63, 63, 64, 64]]),                     # 1 pixel in a corner
        ([2], [[0, 10, 64, 11]]),                      # 1 pixel wide bar
        ([1, 1], [[5, 5, 20, 20], [5, 5, 20, 20]]),    # duplicates
        ([1, -1], [[0, 0, 16, 16], [8, 8, 40, 40]]),   # crowd over a box
        ([1, 0, -1], [[0, 0, 16, 16], [20, 20, 40, 40], [50, 0, 64, 10]]),
        # A box no anchor touches ties with every anchor at IoU 0, so
        # matterport's rule makes every anchor positive.
        ([1, 2], [[300, 300, 310, 310], [5, 5, 20, 20]]),
    ]
    for class_ids, boxes in cases:
        check_against_brute_force(anchors, np.array(class_ids, np.int32),
                                  np.array(boxes, np.int32), config)


def test_rpn_targets_full_size_pyramid():
    # The default 1024x1024 pyramid (261,888 anchors), a few cases.
    config = make_config(IMAGE_MIN_DIM=800, IMAGE_MAX_DIM=1024,
                         RPN_ANCHOR_SCALES=(32, 64, 128, 256, 512),
                         RPN_TRAIN_ANCHORS_PER_IMAGE=600000)
    anchors = tiny_anchors(config)
    assert anchors.shape == (261888, 4)
    rng = np.random.default_rng(7)
    for case in range(3):
        class_ids, boxes = random_gt(rng, 1024, 30, crowd=case == 1)
        check_against_brute_force(anchors, class_ids, boxes, config)


def test_rpn_targets_irregular_anchors_fall_back():
    rng = np.random.default_rng(3)
    yx = rng.uniform(0, 60, (1000, 2))
    hw = rng.uniform(2, 30, (1000, 2))
    anchors = np.concatenate([yx, yx + hw], axis=1)
    config = make_config(RPN_TRAIN_ANCHORS_PER_IMAGE=4096)
    for _ in range(5):
        class_ids, boxes = random_gt(rng, 64, 6, crowd=True)
        check_against_brute_force(anchors, class_ids, boxes, config)


def test_rpn_targets_subsampling():
    config = TinyConfig()  # 32 anchors per image
    anchors = tiny_anchors(config)
    rng = np.random.default_rng(5)
    for case in range(30):
        class_ids, boxes = random_gt(rng, 64, int(rng.integers(1, 12)),
                                     crowd=case % 4 == 0)
        labels, best_gt, gt = brute_force_labels(anchors, class_ids, boxes)
        rpn_match, rpn_bbox = data.build_rpn_targets(
            None, anchors, class_ids, boxes, config, rng=case)
        assert rpn_match.dtype == np.int32 and rpn_match.shape == labels.shape
        assert rpn_bbox.shape == (32, 4) and rpn_bbox.dtype == np.float32
        positives = np.flatnonzero(rpn_match == 1)
        negatives = np.flatnonzero(rpn_match == -1)
        assert np.all(labels[positives] == 1)
        assert np.all(labels[negatives] == -1)
        assert len(positives) == min(16, np.sum(labels == 1))
        assert len(negatives) == min(32 - len(positives),
                                     np.sum(labels == -1))
        if len(positives):
            np.testing.assert_allclose(
                rpn_bbox[:len(positives)],
                reference_deltas(anchors[positives], gt[best_gt[positives]]),
                rtol=1e-4, atol=1e-4)
        assert not rpn_bbox[len(positives):].any()
        again = data.build_rpn_targets(None, anchors, class_ids, boxes,
                                       config, rng=case)
        np.testing.assert_array_equal(again[0], rpn_match)


def test_rpn_targets_reuse_index_only_for_equal_anchors():
    config = make_config(RPN_TRAIN_ANCHORS_PER_IMAGE=4096)
    anchors = tiny_anchors(config)
    class_ids, boxes = np.array([1], np.int32), np.array([[8, 8, 24, 40]])
    check_against_brute_force(anchors, class_ids, boxes, config)
    anchors[:, [0, 2]] += 3.0  # same array object, new content
    check_against_brute_force(anchors, class_ids, boxes, config)


# ----------------------------------------------------- random ROIs, targets

def test_generate_random_rois_stay_near_boxes():
    gt_boxes = np.array([[10, 10, 20, 30]], np.int32)
    rois = data.generate_random_rois((64, 64, 3), 20, np.array([1]), gt_boxes,
                                     rng=0)
    assert rois.shape == (20, 4) and rois.dtype == np.int32
    assert np.all(rois[:, 2] > rois[:, 0]) and np.all(rois[:, 3] > rois[:, 1])
    near = rois[:18]  # int(0.9 * 20 / 1) around the box, within one size
    assert near[:, 0].min() >= 0 and near[:, 2].max() <= 29
    assert near[:, 1].min() >= 0 and near[:, 3].max() <= 49
    assert rois[:, 2].max() <= 63 and rois[:, 3].max() <= 63
    other = data.generate_random_rois((64, 64, 3), 20, np.array([1]),
                                      gt_boxes, rng=1)
    assert not np.array_equal(other, rois)


def detection_case(mini):
    config = make_config(TRAIN_ROIS_PER_IMAGE=4, ROI_POSITIVE_RATIO=0.5,
                         USE_MINI_MASK=mini)
    gt_boxes = np.array([[10, 10, 30, 30]], np.int32)
    if mini:
        gt_masks = np.ones((14, 14, 1), bool)
    else:
        gt_masks = np.zeros((64, 64, 1), bool)
        gt_masks[10:30, 10:30] = True
    rois = np.array([[10, 10, 30, 30], [12, 10, 32, 30],
                     [40, 40, 60, 60], [0, 0, 5, 5]], np.int32)
    return config, rois, np.array([2], np.int32), gt_boxes, gt_masks


@pytest.mark.parametrize("mini", [False, True])
def test_build_detection_targets_hand_values(mini):
    config, rois, class_ids, gt_boxes, gt_masks = detection_case(mini)
    out_rois, out_ids, bboxes, masks = data.build_detection_targets(
        rois, class_ids, gt_boxes, gt_masks, config, rng=0)
    np.testing.assert_array_equal(out_rois, rois)  # 2 fg, 2 bg, in order
    np.testing.assert_array_equal(out_ids, [2, 2, 0, 0])
    assert bboxes.shape == (4, 3, 4) and masks.shape == (4, 28, 28, 3)
    # ROI 1 is 2 px below the GT box: dy = -2 / 20 = -0.1 -> / 0.1 = -1.
    np.testing.assert_allclose(bboxes[1, 2], [-1, 0, 0, 0], atol=1e-6)
    assert not bboxes[0].any() and not bboxes[2:].any()
    assert not bboxes[1, [0, 1]].any()
    np.testing.assert_array_equal(masks[0, :, :, 2], 1)
    # ROI 1 covers GT rows 12..29 of its 20 rows: about the top 90% (the
    # resize pads with zeros, so the outer ring is lower).
    assert masks[1, 1:24, 1:-1, 2].min() == 1
    assert masks[1, -1, :, 2].max() < 0.5
    assert masks[1, :, :, 2].mean() == pytest.approx(0.9, abs=0.08)
    assert not masks[2:].any() and not masks[..., :2].any()


def test_build_detection_targets_fills_with_background():
    config, rois, class_ids, gt_boxes, gt_masks = detection_case(False)
    config.TRAIN_ROIS_PER_IMAGE = 6
    out_rois, out_ids, _, _ = data.build_detection_targets(
        rois, class_ids, gt_boxes, gt_masks, config, rng=0)
    assert len(out_rois) == 6
    np.testing.assert_array_equal(out_ids, [2, 2, 0, 0, 0, 0])
    for roi in out_rois[4:]:
        assert any(np.array_equal(roi, r) for r in rois[2:])
    with pytest.raises(ValueError, match="instances"):
        data.build_detection_targets(rois, np.zeros(1, np.int32), gt_boxes,
                                     gt_masks, config)


# ------------------------------------------------------------------ feeds

def test_data_generator_shapes_and_dtypes():
    config = TinyConfig()
    dataset = RectanglesDataset(random_specs(3, seed=0))
    generator = data.data_generator(dataset, config, shuffle=False,
                                    batch_size=2)
    inputs, outputs = next(generator)
    num_anchors = len(tiny_anchors(config))
    images, meta, rpn_match, rpn_bbox, class_ids, boxes, masks = inputs
    assert outputs == []
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.float32
    assert meta.shape == (2, config.IMAGE_META_SIZE)
    assert rpn_match.shape == (2, num_anchors, 1)
    assert rpn_bbox.shape == (2, 32, 4)
    assert class_ids.shape == (2, 4) and class_ids.dtype == np.int32
    assert boxes.shape == (2, 4, 4) and boxes.dtype == np.int32
    assert masks.shape == (2, 14, 14, 4) and masks.dtype == bool
    # Unshuffled: image 0 first, its boxes as load_image_gt gives them.
    _, _, ids0, bbox0, _ = data.load_image_gt(dataset, config, 0)
    np.testing.assert_array_equal(class_ids[0, :len(ids0)], ids0)
    np.testing.assert_array_equal(boxes[0, :len(ids0)], bbox0)
    assert not class_ids[0, len(ids0):].any()


def test_data_generator_detection_targets():
    config = TinyConfig()
    dataset = RectanglesDataset(random_specs(2, seed=1))
    generator = data.data_generator(dataset, config, batch_size=2,
                                    random_rois=20, detection_targets=True)
    inputs, outputs = next(generator)
    assert len(inputs) == 9 and len(outputs) == 3
    assert inputs[7].shape == (2, 20, 4) and inputs[8].shape == (2, 8, 4)
    assert outputs[0].shape == (2, 8, 1)
    assert outputs[1].shape == (2, 8, 3, 4)
    assert outputs[2].shape == (2, 8, 28, 28, 3)


def test_data_generator_skips_images_without_instances(caplog):
    config = TinyConfig()
    specs = random_specs(3, seed=2)
    specs[1] = (64, 64, [])
    dataset = RectanglesDataset(specs)
    generator = data.data_generator(dataset, config, shuffle=False,
                                    batch_size=2)
    with caplog.at_level(logging.WARNING, logger="mrcnn.data"):
        inputs, _ = next(generator)
    assert "rect-image-1" in caplog.text
    ids = data.parse_image_meta(inputs[1])["image_id"]
    np.testing.assert_array_equal(ids, [0, 2])

    empty = RectanglesDataset([(64, 64, [])] * 2)
    with pytest.raises(ValueError, match="none of the 2 images"):
        next(data.data_generator(empty, config, batch_size=1))


def batches_equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_mask_rcnn_dataset_batch_dict():
    config = TinyConfig()
    dataset = RectanglesDataset(random_specs(5, seed=3))
    feed = data.MaskRCNNDataset(dataset, config, seed=1, random_rois=20)
    assert data.DataSequence is data.MaskRCNNDataset
    assert len(feed) == 3  # ceil(5 / 2)
    batch = feed[0]
    num_anchors = len(tiny_anchors(config))
    expected = {
        "input_image": ((2, 64, 64, 3), np.float32),
        "input_image_meta": ((2, config.IMAGE_META_SIZE), np.float32),
        "input_rpn_match": ((2, num_anchors, 1), np.int32),
        "input_rpn_bbox": ((2, 32, 4), np.float32),
        "input_gt_class_ids": ((2, 4), np.int32),
        "input_gt_boxes": ((2, 4, 4), np.float32),
        "input_gt_masks": ((2, 14, 14, 4), np.bool_),
        "input_rois": ((2, 20, 4), np.int32),
    }
    assert set(batch) == set(expected)
    for key, (shape, dtype) in expected.items():
        assert batch[key].shape == shape, key
        assert batch[key].dtype == dtype, key
    # Boxes and masks agree with load_image_gt for the image in slot 0.
    image_id = feed.image_ids_of_batch(0)[0]
    image, _, ids, bbox, mini = data.load_image_gt(
        dataset, config, image_id, use_mini_mask=True)
    np.testing.assert_array_equal(batch["input_image"][0],
                                  data.mold_image(image, config))
    n = len(ids)
    np.testing.assert_array_equal(batch["input_gt_class_ids"][0, :n], ids)
    np.testing.assert_array_equal(batch["input_gt_boxes"][0, :n], bbox)
    np.testing.assert_array_equal(batch["input_gt_masks"][0, ..., :n], mini)
    assert batch["input_image_meta"][0, 0] == image_id
    with pytest.raises(IndexError):
        feed[3]
    assert len(data.MaskRCNNDataset(dataset, config, steps=7)) == 7


def test_mask_rcnn_dataset_is_deterministic_and_reshuffles():
    config = TinyConfig()
    dataset = RectanglesDataset(random_specs(8, seed=4))
    feed = data.MaskRCNNDataset(dataset, config, seed=5)
    twin = data.MaskRCNNDataset(dataset, config, seed=5)
    first = [feed[i] for i in range(len(feed))]
    assert all(batches_equal(a, twin[i]) for i, a in enumerate(first))
    assert batches_equal(feed[2], first[2])  # re-reading gives the same
    order = [feed.image_ids_of_batch(i) for i in range(len(feed))]
    assert sorted(sum(order, [])) == list(range(8))  # each image once
    feed.on_epoch_end()
    new_order = [feed[i] and feed.image_ids_of_batch(i)
                 for i in range(len(feed))]
    assert sorted(sum(new_order, [])) == list(range(8))
    assert new_order != order
    ordered = data.MaskRCNNDataset(dataset, config, shuffle=False, seed=5)
    ordered[1]
    assert ordered.image_ids_of_batch(1) == [2, 3]


def test_mask_rcnn_dataset_threads_agree_with_sequential():
    config = TinyConfig()
    dataset = RectanglesDataset(random_specs(8, seed=6))
    expected = [data.MaskRCNNDataset(dataset, config, seed=9)[i]
                for i in range(4)]
    feed = data.MaskRCNNDataset(dataset, config, seed=9)
    results = {}

    def work(i):
        results[i] = feed[i]

    threads = [threading.Thread(target=work, args=(i,)) for i in (3, 1, 0, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(batches_equal(results[i], expected[i]) for i in range(4))


def test_mask_rcnn_dataset_skips_empty_and_caps_instances(caplog):
    config = TinyConfig()  # MAX_GT_INSTANCES = 4
    many = [(1, (4 * i, 4 * i, 4 * i + 6, 4 * i + 6)) for i in range(7)]
    specs = [(64, 64, []), (64, 64, many), (64, 64, [(1, (5, 5, 15, 15))])]
    dataset = RectanglesDataset(specs)
    feed = data.MaskRCNNDataset(dataset, config, shuffle=False, seed=0)
    with caplog.at_level(logging.WARNING, logger="mrcnn.data"):
        batch = feed[0]
    assert "rect-image-0" in caplog.text and "no instances" in caplog.text
    assert "rect-image-1" in caplog.text and "MAX_GT_INSTANCES" in caplog.text
    assert feed.image_ids_of_batch(0) == [1, 2]
    assert np.all(batch["input_gt_class_ids"][0] == 1)  # 4 of the 7 kept
    boxes = batch["input_gt_boxes"][0]
    assert len({tuple(b) for b in boxes}) == 4
    assert all(any(np.array_equal(b, [4 * i, 4 * i, 4 * i + 6, 4 * i + 6])
                   for i in range(7)) for b in boxes)

    empty = RectanglesDataset([(64, 64, [])] * 3)
    with pytest.raises(ValueError, match="none of the 3 images"):
        data.MaskRCNNDataset(empty, config)[0]


def test_mask_rcnn_dataset_full_size_masks():
    config = make_config(USE_MINI_MASK=False, IMAGES_PER_GPU=1)
    dataset = RectanglesDataset(random_specs(2, seed=8))
    batch = data.MaskRCNNDataset(dataset, config, seed=0)[0]
    assert batch["input_gt_masks"].shape == (1, 64, 64, 4)
    boxes = batch["input_gt_boxes"][0]
    masks = batch["input_gt_masks"][0]
    for i, class_id in enumerate(batch["input_gt_class_ids"][0]):
        if class_id:
            y1, x1, y2, x2 = boxes[i].astype(int)
            assert masks[y1:y2, x1:x2, i].all()
            assert masks[..., i].sum() == (y2 - y1) * (x2 - x1)


def test_load_image_gt_on_balloon(balloon_path):
    from mrcnn.datasets import load_dataset
    dataset = load_dataset(balloon_path, subset="val")
    config = make_config(NUM_CLASSES=dataset.num_classes, IMAGE_MIN_DIM=256,
                         IMAGE_MAX_DIM=256)
    image, meta, class_ids, bbox, mask = data.load_image_gt(
        dataset, config, 0, use_mini_mask=True)
    window = data.parse_image_meta(meta)["window"]
    assert image.shape == (256, 256, 3) and len(class_ids) > 0
    assert np.all(bbox[:, :2] >= window[:2])
    assert np.all(bbox[:, 2:] <= window[2:])
    assert mask.shape == (14, 14, len(class_ids))
    assert mask.any(axis=(0, 1)).all()


# ------------------------------------------------- fast mask paths, exact

def test_resize_mask_equals_scipy_zoom_pixel_for_pixel():
    import scipy.ndimage
    from mrcnn.structures.resizing import resize_mask
    rng = np.random.default_rng(21)
    for height, width, scale in [(24, 32, 2.0), (480, 640, 1.6),
                                 (683, 1024, 1.0 / 1.0), (768, 1024, 0.5),
                                 (1365, 2048, 0.5), (37, 91, 1024 / 91),
                                 (7, 5, 0.77), (600, 800, 1024 / 800)]:
        mask = rng.random((height, width, 3)) < 0.3
        if scale == 1:
            continue
        expected = scipy.ndimage.zoom(mask.astype(np.float32),
                                      [scale, scale, 1], order=0) > 0.5
        got = resize_mask(mask, scale, [(0, 0), (0, 0), (0, 0)])
        assert got.dtype == bool
        np.testing.assert_array_equal(got, expected)


def test_extract_bboxes_and_drop_empty_match_brute_force():
    from mrcnn.structures import dropped
    rng = np.random.default_rng(22)
    mask = np.zeros((75, 41, 6), bool)
    for i in range(5):
        mask[rng.integers(0, 75, 9), rng.integers(0, 41, 9), i] = True
    expected = []
    for i in range(6):
        ys, xs = np.nonzero(mask[..., i])
        expected.append([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]
                        if len(ys) else [0, 0, 0, 0])
    np.testing.assert_array_equal(utils.extract_bboxes(mask), expected)
    dataset = RectanglesDataset(random_specs(1, seed=0))
    kept, ids = dropped.drop_empty(dataset, 0, mask, np.arange(6),
                                   "empty_after_augmentation")
    np.testing.assert_array_equal(ids, np.arange(5))
    np.testing.assert_array_equal(kept, mask[..., :5])


def test_fast_resize_is_within_one_level_of_skimage():
    import cv2
    from mrcnn.structures.resizing import bilinear_like_skimage, resize
    rng = np.random.default_rng(23)
    for case in range(24):
        height, width = (int(v) for v in rng.integers(3, 300, 2))
        scale = rng.uniform(0.3, 3.5)
        shape = (max(1, round(height * scale)), max(1, round(width * scale)))
        coarse = rng.integers(0, 256, (height // 6 + 1, width // 6 + 1, 3),
                              dtype=np.uint8)
        # Flat blocks (hard edges) and smooth gradients; some images do
        # not reach 0 or 255 (scikit-image clips to the input's range).
        image = cv2.resize(coarse, (width, height), interpolation=(
            cv2.INTER_NEAREST if case % 2 else cv2.INTER_CUBIC))
        if case % 3 == 0:
            image = image // 3 + 40
        expected = resize(image, shape, preserve_range=True).astype(np.uint8)
        got = bilinear_like_skimage(image, shape)
        assert got.shape == expected.shape and got.dtype == np.uint8
        difference = np.abs(got.astype(int) - expected)
        assert difference.max() <= 1, (case, height, width, shape)
        assert difference.mean() <= 0.05, (case, height, width, shape)


def test_load_image_gt_resizes_fast_and_detection_as_skimage():
    from mrcnn.structures.resizing import resize_image
    shapes = [(1, (2, 4, 12, 14)), (2, (14, 20, 24, 31))]
    dataset = RectanglesDataset([(23, 31, shapes)])
    config = TinyConfig()
    image, meta, _, _, _ = data.load_image_gt(dataset, config, 0)
    exact, window, scale, _, _ = resize_image(
        dataset.load_image(0), min_dim=64, max_dim=64, mode="square")
    assert image.shape == exact.shape
    assert np.abs(image.astype(int) - exact).max() <= 1
    np.testing.assert_array_equal(data.parse_image_meta(meta)["window"],
                                  window)
