"""The built-in-ops crop and NMS against the TensorFlow ops they replace,
on random inputs: the exported ONNX and LiteRT graphs use them."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.network import nms
from mrcnn.network.detection import refine_detections
from mrcnn.network.roi_align import crop_and_resize_gather
from mrcnn.network.rpn import ProposalLayer


def random_boxes(rng, count, spread=1.0, inverted=False):
    """[count, (y1, x1, y2, x2)] float32, some of zero size, some reaching
    outside [0, 1] (spread > 1), some inverted if asked (the crop takes
    them; the graph's boxes never are: decoded heights are positive)."""
    corners = rng.uniform(-0.2 * spread, 1 + 0.2 * spread, (count, 2, 2))
    boxes = np.concatenate([corners.min(1), corners.max(1)], axis=1)
    if inverted:
        boxes[::7] = boxes[::7, [2, 3, 0, 1]]
    boxes[3::11, 2:] = boxes[3::11, :2]    # a point
    return boxes.astype(np.float32)


@pytest.mark.parametrize("crop_size", [(7, 7), (14, 14), (1, 1), (3, 1)])
def test_crop_and_resize_gather_equals_crop_and_resize(crop_size):
    rng = np.random.default_rng(crop_size[0] * 10 + crop_size[1])
    image = rng.normal(size=(3, 13, 17, 5)).astype(np.float32)
    boxes = random_boxes(rng, 40, spread=2.0, inverted=True)
    box_indices = rng.integers(0, 3, 40).astype(np.int32)
    expected = tf.image.crop_and_resize(image, boxes, box_indices, crop_size)
    actual = crop_and_resize_gather(tf.constant(image), tf.constant(boxes),
                                    tf.constant(box_indices), crop_size)
    assert np.count_nonzero(expected.numpy()) > 0
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=0,
                               atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_padded_nms_equals_non_max_suppression(seed):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 200)
    scores = rng.uniform(size=200).astype(np.float32)
    scores[10:20] = scores[0]  # ties go to the lower index
    expected = tf.image.non_max_suppression(boxes, scores, 50, 0.5).numpy()
    indices, count = nms.padded_nms(boxes, scores, 50, 0.5)
    assert 0 < len(expected) <= 50
    assert count.numpy() == len(expected)
    np.testing.assert_array_equal(indices.numpy()[:count], expected)
    assert not indices.numpy()[count:].any()


def random_head_outputs(rng, num_rois, num_classes):
    rois = random_boxes(rng, num_rois) * 0.5 + 0.25
    # Clusters of overlapping ROIs, so that NMS has work to do.
    rois[num_rois // 2:] = rois[:num_rois // 2] + rng.normal(
        0, 0.01, (num_rois // 2, 4)).astype(np.float32)
    logits = rng.normal(0, 2, (num_rois, num_classes))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    deltas = rng.normal(0, 0.5, (num_rois, num_classes, 4))
    return (tf.constant(rois), tf.constant(probs, tf.float32),
            tf.constant(deltas, tf.float32))


@pytest.mark.parametrize("seed,num_rois,max_instances,min_confidence", [
    (0, 64, 10, 0.0), (1, 64, 100, 0.0), (2, 200, 30, 0.3),
    (3, 32, 8, 0.7)])
def test_builtin_detections_equal_the_graphs(seed, num_rois, max_instances,
                                             min_confidence):
    rng = np.random.default_rng(seed)
    rois, probs, deltas = random_head_outputs(rng, num_rois, 5)
    # The padding rows of ProposalLayer: all-zero ROIs, equal scores.
    rois = tf.concat([rois[:-6], tf.zeros([6, 4])], axis=0)
    window = tf.constant([0.1, 0.0, 0.9, 1.0])
    args = (rois, probs, deltas, window, max_instances, min_confidence,
            0.3, (0.1, 0.1, 0.2, 0.2))
    expected = refine_detections(*args).numpy()
    actual = refine_detections(*args, builtin_ops=True).numpy()
    assert np.count_nonzero(expected[:, 4]) > 0
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_builtin_proposals_equal_the_graphs(seed):
    rng = np.random.default_rng(seed)
    # 30 places, 10 near-copies of each: NMS keeps fewer than 120.
    anchors = np.tile(random_boxes(rng, 30) * 0.5 + 0.25, [10, 1])[None]
    probs = rng.uniform(size=(1, 300, 1)).astype(np.float32)
    inputs = [tf.constant(np.concatenate([1 - probs, probs], -1)),
              tf.constant(rng.normal(0, 0.05, (1, 300, 4)), tf.float32),
              tf.constant(anchors)]
    settings = dict(proposal_count=120, nms_threshold=0.7, pre_nms_limit=250)
    expected = ProposalLayer(**settings)(inputs).numpy()
    actual = ProposalLayer(builtin_ops=True, **settings)(inputs).numpy()
    # Some padding: fewer than proposal_count survive the suppression.
    assert not expected[0, -1].any() and expected[0, 0].any()
    np.testing.assert_array_equal(actual, expected)
