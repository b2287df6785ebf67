"""DetectionTargetLayer against a numpy reference on small hand-made images."""
import keras
import numpy as np
import pytest
from scipy import ndimage

from mrcnn.network.targets import DetectionTargetLayer, detection_targets_graph

BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])


def numpy_iou(box, other):
    """IoU of two (y1, x1, y2, x2) boxes."""
    height = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
    width = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
    intersection = height * width

    def area(b):
        return (b[2] - b[0]) * (b[3] - b[1])

    return intersection / (area(box) + area(other) - intersection)


def numpy_refinement(box, gt_box):
    """(dy, dx, log(dh), log(dw)) taking box to gt_box."""
    height, width = box[2] - box[0], box[3] - box[1]
    gt_height, gt_width = gt_box[2] - gt_box[0], gt_box[3] - gt_box[1]
    return np.array([
        (gt_box[0] + gt_height / 2 - box[0] - height / 2) / height,
        (gt_box[1] + gt_width / 2 - box[1] - width / 2) / width,
        np.log(gt_height / height), np.log(gt_width / width)])


def numpy_mask_crop(mask, box, shape):
    """Unrounded bilinear crop of box (normalized to mask) from mask [H, W].

    Samples span box corner to corner with normalized 0 and 1 on the
    centres of the edge pixels; samples off the mask read 0.
    """
    height, width = mask.shape
    ys = box[0] * (height - 1) + np.arange(shape[0]) * (
        (box[2] - box[0]) * (height - 1) / (shape[0] - 1))
    xs = box[1] * (width - 1) + np.arange(shape[1]) * (
        (box[3] - box[1]) * (width - 1) / (shape[1] - 1))
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    values = ndimage.map_coordinates(mask.astype(np.float64),
                                     [grid_y, grid_x], order=1, mode="nearest")
    inside = ((grid_y >= 0) & (grid_y <= height - 1)
              & (grid_x >= 0) & (grid_x <= width - 1))
    return np.where(inside, values, 0.0)


def assert_binary_mask_close(actual, unrounded, context):
    """actual == round(unrounded), except where float32 may tip a 0.5 tie."""
    decided = np.abs(unrounded - 0.5) > 1e-4
    assert decided.mean() > 0.9, context
    np.testing.assert_array_equal(actual[decided],
                                  np.round(unrounded[decided]),
                                  err_msg=context)


def labels(proposals, gt_class_ids, gt_boxes):
    """Numpy labelling: positive / negative / excluded proposal indices.

    Returns (positives {index: gt index}, negatives set); zero rows ignored.
    """
    instances = [i for i, c in enumerate(gt_class_ids) if c > 0]
    crowds = [i for i, c in enumerate(gt_class_ids) if c < 0]
    positives, negatives = {}, set()
    for p, proposal in enumerate(proposals):
        if not np.any(proposal):
            continue
        ious = [numpy_iou(proposal, gt_boxes[g]) for g in instances]
        crowd_ious = [numpy_iou(proposal, gt_boxes[g]) for g in crowds]
        if ious and max(ious) >= 0.5:
            positives[p] = instances[int(np.argmax(ious))]
        elif not crowd_ious or max(crowd_ious) < 0.001:
            negatives.add(p)
    return positives, negatives


def expected_counts(positive_count, negative_count, rois, ratio):
    positives = min(positive_count, int(rois * ratio))
    if positives == 0:
        return 0, min(negative_count, rois)
    return positives, min(negative_count, int(positives / ratio) - positives)


def row_index(row, proposals):
    """Index of the proposal equal to row."""
    matches = np.flatnonzero(np.all(proposals == row, axis=1))
    assert len(matches) == 1, "ROI {} is not a proposal".format(row)
    return int(matches[0])


def check_image(outputs, proposals, gt_class_ids, gt_boxes, gt_masks,
                rois_per_image, ratio, mask_shape, use_mini_mask):
    """Checks one image's targets against the numpy reference."""
    rois, class_ids, deltas, masks = outputs
    positives, negatives = labels(proposals, gt_class_ids, gt_boxes)
    n_pos, n_neg = expected_counts(len(positives), len(negatives),
                                   rois_per_image, ratio)
    assert np.count_nonzero(class_ids) == n_pos

    for r in range(n_pos):
        p = row_index(rois[r], proposals)
        assert p in positives
        gt = positives[p]
        assert class_ids[r] == gt_class_ids[gt]
        np.testing.assert_allclose(
            deltas[r], numpy_refinement(proposals[p].astype(np.float64),
                                        gt_boxes[gt]) / BBOX_STD_DEV,
            rtol=1e-4, atol=1e-5)
        if use_mini_mask:
            gy1, gx1, gy2, gx2 = gt_boxes[gt].astype(np.float64)
            box = (proposals[p] - [gy1, gx1, gy1, gx1]) / [
                gy2 - gy1, gx2 - gx1, gy2 - gy1, gx2 - gx1]
        else:
            box = proposals[p].astype(np.float64)
        assert_binary_mask_close(
            masks[r], numpy_mask_crop(gt_masks[..., gt], box, mask_shape),
            "mask of ROI {} (proposal {})".format(r, p))

    chosen_negatives = [row_index(rois[r], proposals)
                        for r in range(n_pos, n_pos + n_neg)]
    assert set(chosen_negatives) <= negatives
    assert len(set(chosen_negatives)) == n_neg
    # Positives are distinct too.
    assert len({row_index(rois[r], proposals) for r in range(n_pos)}) == n_pos
    assert not np.any(rois[n_pos + n_neg:])
    assert not np.any(class_ids[n_pos:])
    assert not np.any(deltas[n_pos:])
    assert not np.any(masks[n_pos:])


# One 40 x 48 image: two instances, one crowd, one GT padding row.
GT_CLASS_IDS = np.array([1, 2, -1, 0], np.int32)
GT_BOXES = np.array([
    [0.1, 0.1, 0.4, 0.4],
    [0.5, 0.5, 0.9, 0.8],
    [0.0, 0.6, 0.3, 1.0],
    [0.0, 0.0, 0.0, 0.0],
], np.float32)
PROPOSALS = np.array([
    [0.1, 0.1, 0.4, 0.4],     # positive, instance 0
    [0.1, 0.1, 0.4, 0.45],    # positive, instance 0
    [0.13, 0.08, 0.4, 0.38],  # positive, instance 0
    [0.5, 0.5, 0.9, 0.8],     # positive, instance 1
    [0.55, 0.45, 0.92, 0.8],  # positive, instance 1
    [0.6, 0.0, 0.9, 0.3],     # negative, touches nothing
    [0.1, 0.1, 0.25, 0.25],   # negative, IoU 0.25 with instance 0
    [0.35, 0.35, 0.6, 0.6],   # negative, small overlaps
    [0.0, 0.5, 0.3, 0.7],     # overlaps the crowd: neither
    [0.05, 0.65, 0.25, 0.95],  # inside the crowd: neither
    [0.0, 0.0, 0.0, 0.0],     # padding
    [0.0, 0.0, 0.0, 0.0],
], np.float32)


def blob_masks(height, width, count, seed):
    """[height, width, count] bool masks of random-radius disks + noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[:height, :width]
    masks = np.zeros([height, width, count], bool)
    for i in range(count):
        cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
        radius = rng.uniform(0.2, 0.4) * min(height, width)
        masks[..., i] = ((ys - cy) ** 2 + (xs - cx) ** 2 < radius ** 2) ^ (
            rng.uniform(size=(height, width)) < 0.1)
    return masks


def run_layer(layer, proposals, class_ids, boxes, masks):
    outputs = layer([proposals, class_ids, boxes, masks])
    return [o.numpy() for o in outputs]


def test_reference_labels_of_the_hand_made_image():
    # Guards the fixture: the numpy labelling sees what the comments say.
    positives, negatives = labels(PROPOSALS, GT_CLASS_IDS, GT_BOXES)
    assert positives == {0: 0, 1: 0, 2: 0, 3: 1, 4: 1}
    assert negatives == {5, 6, 7}


@pytest.mark.parametrize("use_mini_mask", [False, True])
def test_targets_match_numpy_reference(use_mini_mask):
    mask_shape, rois_per_image, ratio = (6, 7), 8, 0.5
    masks = blob_masks(*((12, 10) if use_mini_mask else (40, 48)), 4, seed=0)
    # A batch of identical images: each draws its own random subset.
    batch = 3
    layer = DetectionTargetLayer(rois_per_image, ratio, mask_shape,
                                 use_mini_mask)
    outputs = run_layer(layer, np.stack([PROPOSALS] * batch),
                        np.stack([GT_CLASS_IDS] * batch),
                        np.stack([GT_BOXES] * batch),
                        np.stack([masks] * batch))
    for b in range(batch):
        # 5 positives capped at 4, then int(4 / 0.5) - 4 = 4 negatives wanted
        # but only 3 exist, then 1 padding row.
        check_image([o[b] for o in outputs], PROPOSALS, GT_CLASS_IDS,
                    GT_BOXES, masks, rois_per_image, ratio, mask_shape,
                    use_mini_mask)
        assert np.count_nonzero(np.any(outputs[0][b], axis=1)) == 7


def test_float_and_bool_masks_give_same_targets():
    masks = blob_masks(40, 48, 4, seed=1)
    # Ratio 1: every positive is kept and no negative, so no randomness in
    # the set; the order is random, so compare sorted by ROI.
    layer = DetectionTargetLayer(5, 1.0, (4, 4), False)
    results = []
    for gt_masks in (masks, masks.astype(np.float32)):
        rois, ids, deltas, crops = run_layer(
            layer, PROPOSALS[None], GT_CLASS_IDS[None], GT_BOXES[None],
            gt_masks[None])
        order = np.lexsort(rois[0].T)
        results.append((rois[0][order], crops[0][order]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def random_proposals(rng, gt_boxes, count):
    """Jittered GT boxes (many positives) and random boxes (negatives)."""
    jittered = np.repeat(gt_boxes, count // (2 * len(gt_boxes)), axis=0)
    jittered = jittered + rng.normal(0, 0.03, jittered.shape)
    corners = rng.uniform(0, 1, (count - len(jittered), 2, 2))
    scattered = np.concatenate([corners.min(1), corners.max(1)], axis=1)
    return np.clip(np.concatenate([jittered, scattered]), 0, 1).astype(
        np.float32)


@pytest.mark.parametrize("seed", [0, 1])
def test_counts_follow_the_positive_ratio(seed):
    rng = np.random.default_rng(seed)
    gt_boxes = np.array([[0.1, 0.1, 0.5, 0.4], [0.4, 0.5, 0.9, 0.95]],
                        np.float32)
    gt_ids = np.array([1, 3], np.int32)
    proposals = random_proposals(rng, gt_boxes, 120)
    masks = blob_masks(32, 32, 2, seed)
    rois_per_image, ratio, mask_shape = 20, 0.33, (4, 4)
    layer = DetectionTargetLayer(rois_per_image, ratio, mask_shape, False)
    outputs = run_layer(layer, proposals[None], gt_ids[None], gt_boxes[None],
                        masks[None])
    positives, negatives = labels(proposals, gt_ids, gt_boxes)
    assert len(positives) > 6 and len(negatives) > 12
    # int(20 * 0.33) = 6 positives, int(6 / 0.33) - 6 = 12 negatives.
    assert np.count_nonzero(outputs[1][0]) == 6
    assert np.count_nonzero(np.any(outputs[0][0], axis=1)) == 18
    check_image([o[0] for o in outputs], proposals, gt_ids, gt_boxes, masks,
                rois_per_image, ratio, mask_shape, False)


@pytest.mark.parametrize("gt_class_ids, gt_boxes", [
    # No GT at all (all padding).
    (np.zeros(4, np.int32), np.zeros((4, 4), np.float32)),
    # GT far from every proposal.
    (np.array([2, 0, 0, 0], np.int32),
     np.array([[0.92, 0.92, 0.99, 0.99]] + [[0, 0, 0, 0]] * 3, np.float32)),
    # Only a crowd: the two proposals touching it are not negatives.
    (np.array([-1, 0, 0, 0], np.int32),
     np.array([[0.0, 0.6, 0.3, 1.0]] + [[0, 0, 0, 0]] * 3, np.float32)),
], ids=["no_gt", "no_positive", "only_crowd"])
def test_images_without_positives_get_only_negatives(gt_class_ids, gt_boxes):
    masks = blob_masks(40, 48, 4, seed=2)
    rois_per_image = 8
    layer = DetectionTargetLayer(rois_per_image, 0.33, (5, 5), False)
    outputs = run_layer(layer, PROPOSALS[None], gt_class_ids[None],
                        gt_boxes[None], masks[None])
    positives, negatives = labels(PROPOSALS, gt_class_ids, gt_boxes)
    assert not positives
    check_image([o[0] for o in outputs], PROPOSALS, gt_class_ids, gt_boxes,
                masks, rois_per_image, 0.33, (5, 5), False)
    # 10 (8 beside the crowd) candidate negatives fill all 8 ROIs.
    assert np.count_nonzero(np.any(outputs[0][0], axis=1)) == rois_per_image
    if gt_class_ids[0] < 0:
        chosen = {row_index(r, PROPOSALS) for r in outputs[0][0]}
        assert not chosen & {8, 9}


def test_batch_mixes_images_with_and_without_gt():
    masks = blob_masks(40, 48, 4, seed=3)
    no_gt_ids, no_gt_boxes = np.zeros(4, np.int32), np.zeros((4, 4),
                                                              np.float32)
    layer = DetectionTargetLayer(8, 0.5, (5, 5), False)
    outputs = run_layer(layer, np.stack([PROPOSALS, PROPOSALS]),
                        np.stack([GT_CLASS_IDS, no_gt_ids]),
                        np.stack([GT_BOXES, no_gt_boxes]),
                        np.stack([masks, masks]))
    check_image([o[0] for o in outputs], PROPOSALS, GT_CLASS_IDS, GT_BOXES,
                masks, 8, 0.5, (5, 5), False)
    check_image([o[1] for o in outputs], PROPOSALS, no_gt_ids, no_gt_boxes,
                masks, 8, 0.5, (5, 5), False)


def test_inside_functional_model_and_config_round_trip():
    mini, max_gt, rois_per_image = (12, 10), 4, 8
    inputs = [keras.Input((None, 4)), keras.Input((max_gt,), dtype="int32"),
              keras.Input((max_gt, 4)), keras.Input(mini + (max_gt,),
                                                    dtype="bool")]
    layer = DetectionTargetLayer(rois_per_image, 0.5, (6, 6), True,
                                 name="proposal_targets")
    outputs = layer(inputs)
    assert [tuple(o.shape) for o in outputs] == [
        (None, 8, 4), (None, 8), (None, 8, 4), (None, 8, 6, 6)]
    assert [o.dtype for o in outputs] == [
        "float32", "int32", "float32", "float32"]
    model = keras.Model(inputs, outputs)
    masks = blob_masks(*mini, max_gt, seed=4)
    results = model.predict([PROPOSALS[None], GT_CLASS_IDS[None],
                             GT_BOXES[None], masks[None]], verbose=0)
    check_image([r[0] for r in results], PROPOSALS, GT_CLASS_IDS, GT_BOXES,
                masks, rois_per_image, 0.5, (6, 6), True)

    config = layer.get_config()
    clone = DetectionTargetLayer.from_config(config)
    assert clone.get_config() == config
    assert (clone.train_rois_per_image, clone.roi_positive_ratio,
            clone.mask_shape, clone.use_mini_mask, clone.bbox_std_dev) == (
        8, 0.5, (6, 6), True, (0.1, 0.1, 0.2, 0.2))


def test_config_driven_graph_function():
    class TinyConfig:
        TRAIN_ROIS_PER_IMAGE = 8
        ROI_POSITIVE_RATIO = 0.5
        MASK_SHAPE = [5, 5]
        USE_MINI_MASK = False
        BBOX_STD_DEV = BBOX_STD_DEV

    masks = blob_masks(40, 48, 4, seed=5)
    outputs = detection_targets_graph(PROPOSALS, GT_CLASS_IDS, GT_BOXES,
                                      masks, TinyConfig())
    check_image([o.numpy() for o in outputs], PROPOSALS, GT_CLASS_IDS,
                GT_BOXES, masks, 8, 0.5, (5, 5), False)


@pytest.mark.parametrize("kwargs, message", [
    (dict(train_rois_per_image=0), "train_rois_per_image"),
    (dict(roi_positive_ratio=0.0), "roi_positive_ratio"),
    (dict(roi_positive_ratio=1.5), "roi_positive_ratio"),
    (dict(mask_shape=(28,)), "mask_shape"),
])
def test_bad_arguments_are_reported(kwargs, message):
    arguments = dict(train_rois_per_image=8, roi_positive_ratio=0.33,
                     mask_shape=(28, 28), use_mini_mask=True)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        DetectionTargetLayer(**arguments)


def test_gt_boxes_join_the_proposals_when_asked():
    """With proposals far from every GT box, only add_gt_to_proposals gives
    positives: the GT box itself, with zero deltas and the full GT mask."""
    gt_box = np.array([0.2, 0.2, 0.6, 0.5], np.float32)
    proposals = np.zeros([1, 6, 4], np.float32)
    proposals[0, :2] = [[0.7, 0.7, 0.9, 0.9], [0.75, 0.0, 0.95, 0.2]]
    gt_class_ids = np.array([[3, 0]], np.int32)
    gt_boxes = np.stack([gt_box, np.zeros(4, np.float32)])[np.newaxis]
    gt_masks = np.zeros([1, 8, 8, 2], bool)
    gt_masks[0, :, :, 0] = True  # mini mask: the whole box is the object
    results = {}
    for add_gt in (False, True):
        layer = DetectionTargetLayer(4, 0.5, (6, 6), use_mini_mask=True,
                                     add_gt_to_proposals=add_gt)
        rois, class_ids, deltas, masks = [
            np.asarray(x) for x in layer([proposals, gt_class_ids, gt_boxes,
                                          gt_masks])]
        results[add_gt] = (rois, class_ids, deltas, masks)
    assert not np.any(results[False][1] > 0)
    rois, class_ids, deltas, masks = results[True]
    assert list(class_ids[0]) == [3, 0, 0, 0]
    np.testing.assert_allclose(rois[0, 0], gt_box, atol=1e-6)
    np.testing.assert_allclose(deltas[0, 0], 0, atol=1e-5)
    np.testing.assert_array_equal(masks[0, 0], np.ones([6, 6]))
    assert layer.get_config()["add_gt_to_proposals"] is True


def test_fill_with_negatives_replaces_zero_padding():
    """One positive among many negatives: the ratio alone keeps 1 + 1 ROIs
    and pads the rest with zeros; filling keeps 1 positive + 5 negatives."""
    rng = np.random.default_rng(0)
    gt_box = np.array([0.1, 0.1, 0.4, 0.4], np.float32)
    proposals = np.zeros([1, 12, 4], np.float32)
    proposals[0, 0] = gt_box
    corners = rng.uniform(0.5, 0.7, size=(9, 2)).astype(np.float32)
    proposals[0, 1:10] = np.concatenate([corners, corners + 0.2], axis=1)
    gt_class_ids = np.array([[2]], np.int32)
    gt_boxes = gt_box[np.newaxis, np.newaxis]
    gt_masks = np.ones([1, 8, 8, 1], bool)
    counts = {}
    for fill in (False, True):
        layer = DetectionTargetLayer(6, 0.5, (4, 4), use_mini_mask=True,
                                     fill_with_negatives=fill)
        rois, class_ids, _, _ = [np.asarray(x) for x in layer(
            [proposals, gt_class_ids, gt_boxes, gt_masks])]
        real = np.abs(rois[0]).sum(-1) > 0
        counts[fill] = (int((class_ids[0] > 0).sum()), int(real.sum()))
        # Every real ROI is a proposal: positives first, then negatives.
        assert class_ids[0, 0] == 2 and np.all(class_ids[0, 1:] == 0)
    assert counts[False] == (1, 2)
    assert counts[True] == (1, 6)
    assert layer.get_config()["fill_with_negatives"] is True
