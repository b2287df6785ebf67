"""mrcnn.network.box_ops (TensorFlow) held equal to its numpy twins in mrcnn.utils,
and the functions without a twin checked by hand."""
import numpy as np
import pytest
import tensorflow as tf

from mrcnn import utils
from mrcnn.network import box_ops


def random_boxes(rng, n, low=0.0, high=100.0):
    """[n, (y1, x1, y2, x2)] float32 boxes with positive sizes."""
    corner = rng.uniform(low, high, size=(n, 2))
    size = rng.uniform(1.0, (high - low) / 2, size=(n, 2))
    return np.concatenate([corner, corner + size], 1).astype(np.float32)


def test_apply_box_deltas_matches_utils():
    rng = np.random.default_rng(0)
    boxes = random_boxes(rng, 50)
    deltas = rng.normal(scale=0.5, size=(50, 4)).astype(np.float32)
    got = box_ops.apply_box_deltas_graph(tf.constant(boxes),
                                         tf.constant(deltas))
    np.testing.assert_allclose(got.numpy(),
                               utils.apply_box_deltas(boxes, deltas),
                               rtol=1e-5, atol=1e-4)


def test_apply_box_deltas_works_on_batches():
    rng = np.random.default_rng(1)
    boxes = random_boxes(rng, 12).reshape(3, 4, 4)
    deltas = rng.normal(scale=0.5, size=(3, 4, 4)).astype(np.float32)
    got = box_ops.apply_box_deltas_graph(tf.constant(boxes),
                                         tf.constant(deltas)).numpy()
    want = utils.apply_box_deltas(boxes.reshape(-1, 4), deltas.reshape(-1, 4))
    np.testing.assert_allclose(got.reshape(-1, 4), want, rtol=1e-5,
                               atol=1e-4)


def test_box_refinement_matches_utils_and_inverts_deltas():
    rng = np.random.default_rng(2)
    boxes = random_boxes(rng, 40)
    gt_boxes = random_boxes(rng, 40)
    got = box_ops.box_refinement_graph(tf.constant(boxes),
                                       tf.constant(gt_boxes)).numpy()
    np.testing.assert_allclose(got, utils.box_refinement(boxes, gt_boxes),
                               rtol=1e-5, atol=1e-5)
    round_trip = box_ops.apply_box_deltas_graph(tf.constant(boxes),
                                                tf.constant(got)).numpy()
    np.testing.assert_allclose(round_trip, gt_boxes, atol=1e-3)


def test_overlaps_match_utils_compute_overlaps():
    rng = np.random.default_rng(3)
    boxes1 = random_boxes(rng, 30, high=50.0)
    boxes2 = random_boxes(rng, 20, high=50.0)
    got = box_ops.overlaps_graph(tf.constant(boxes1),
                                 tf.constant(boxes2)).numpy()
    want = utils.compute_overlaps(boxes1, boxes2)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.any(want == 0) and np.any(want > 0.3)  # both cases occur


def test_overlaps_hand_worked_and_zero_area():
    boxes1 = tf.constant([[0., 0., 2., 2.], [0., 0., 0., 0.]])
    boxes2 = tf.constant([[1., 1., 3., 3.], [0., 0., 2., 2.]])
    got = box_ops.overlaps_graph(boxes1, boxes2).numpy()
    # 1x1 intersection over 4 + 4 - 1; identical boxes; empty box -> 0.
    np.testing.assert_allclose(got, [[1 / 7, 1.0], [0.0, 0.0]], atol=1e-7)


def test_norm_and_denorm_boxes_match_utils():
    rng = np.random.default_rng(4)
    shape = (120, 90)
    pixels = rng.integers(0, 90, size=(25, 4)).astype(np.float32)
    got = box_ops.norm_boxes_graph(tf.constant(pixels),
                                   tf.constant(shape)).numpy()
    np.testing.assert_allclose(got, utils.norm_boxes(pixels, shape),
                               atol=1e-6)
    normalized = rng.uniform(0, 1, size=(25, 4)).astype(np.float32)
    got = box_ops.denorm_boxes_graph(tf.constant(normalized),
                                     tf.constant(shape)).numpy()
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, utils.denorm_boxes(normalized, shape))


def test_denorm_round_trip_and_half_rounding():
    shape = tf.constant([11, 21])
    pixels = np.array([[0, 0, 11, 21], [3, 5, 7, 9]], np.float32)
    normalized = box_ops.norm_boxes_graph(tf.constant(pixels), shape)
    np.testing.assert_allclose(normalized.numpy()[0], [0, 0, 1, 1])
    np.testing.assert_array_equal(
        box_ops.denorm_boxes_graph(normalized, shape).numpy(), pixels)
    # Exact halves (y: 0.25 * 10 = 2.5, x: 0.125 * 20 = 2.5, 0.375 * 20 =
    # 7.5; y2, x2 shifted by one): both twins round half to even.
    halves = np.array([[0.25, 0.125, 0.25, 0.375]], np.float32)
    got = box_ops.denorm_boxes_graph(tf.constant(halves), shape).numpy()
    np.testing.assert_array_equal(got, [[2, 2, 4, 8]])
    np.testing.assert_array_equal(got, utils.denorm_boxes(halves, (11, 21)))


def test_trim_zeros_matches_utils():
    rng = np.random.default_rng(5)
    boxes = random_boxes(rng, 10)
    boxes[[1, 4, 9]] = 0.0
    boxes[6, :3] = 0.0  # a row with one non-zero value is kept
    trimmed, non_zeros = box_ops.trim_zeros_graph(tf.constant(boxes))
    np.testing.assert_array_equal(trimmed.numpy(), utils.trim_zeros(boxes))
    np.testing.assert_array_equal(non_zeros.numpy(),
                                  ~np.all(boxes == 0, axis=1))


def test_clip_boxes_by_hand():
    boxes = tf.constant([[-5., 2., 8., 30.],     # sticks out top and right
                         [1., 1., 3., 3.],       # inside: unchanged
                         [50., 50., 60., 60.]])  # fully outside
    window = tf.constant([0., 0., 10., 20.])
    got = box_ops.clip_boxes_graph(boxes, window).numpy()
    np.testing.assert_array_equal(got, [[0, 2, 8, 20], [1, 1, 3, 3],
                                        [10, 20, 10, 20]])


def test_clip_boxes_on_batched_boxes():
    boxes = tf.constant([[[-1., -1., 2., 2.]], [[0.5, 0.5, 0.7, 0.9]]])
    got = box_ops.clip_boxes_graph(
        boxes, tf.constant([0., 0., 1., 0.8])).numpy()
    np.testing.assert_allclose(got, [[[0, 0, 1, 0.8]],
                                     [[0.5, 0.5, 0.7, 0.8]]])


def test_batch_pack_by_hand():
    x = tf.constant([[1, 2, 3], [4, 5, 6]])
    got = box_ops.batch_pack_graph(x, tf.constant([2, 0]), 2).numpy()
    np.testing.assert_array_equal(got, [1, 2])
    got = box_ops.batch_pack_graph(x, tf.constant([1, 3]), 2).numpy()
    np.testing.assert_array_equal(got, [1, 4, 5, 6])


def test_parse_image_meta_by_hand():
    num_classes = 3
    meta = np.array([
        [7, 480, 640, 3, 128, 128, 3, 16, 0, 112, 128, 0.2, 1, 1, 0],
        [9, 100, 50, 3, 128, 128, 3, 0, 32, 128, 96, 1.28, 1, 0, 1],
    ], np.float32)
    assert meta.shape[1] == 12 + num_classes
    parsed = box_ops.parse_image_meta_graph(tf.constant(meta))
    expected = {
        "image_id": [7, 9],
        "original_image_shape": [[480, 640, 3], [100, 50, 3]],
        "image_shape": [[128, 128, 3], [128, 128, 3]],
        "window": [[16, 0, 112, 128], [0, 32, 128, 96]],
        "scale": [0.2, 1.28],
        "active_class_ids": [[1, 1, 0], [1, 0, 1]],
    }
    assert set(parsed) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(parsed[key].numpy(), value,
                                   err_msg=key, rtol=1e-6)


def test_parse_image_meta_inverts_compose_image_meta():
    data = pytest.importorskip("mrcnn.data")
    active = np.array([1, 0, 1, 1], np.int32)
    meta = data.compose_image_meta(5, (300, 400, 3), (256, 256, 3),
                                   (32, 0, 224, 256), 0.64, active)
    parsed = box_ops.parse_image_meta_graph(
        tf.constant(np.asarray(meta, np.float32)[None]))
    np.testing.assert_allclose(parsed["window"].numpy(), [[32, 0, 224, 256]])
    np.testing.assert_allclose(parsed["scale"].numpy(), [0.64], rtol=1e-6)
    np.testing.assert_allclose(parsed["image_shape"].numpy(), [[256, 256, 3]])
    np.testing.assert_allclose(parsed["original_image_shape"].numpy(),
                               [[300, 400, 3]])
    np.testing.assert_allclose(parsed["active_class_ids"].numpy(), [active])
    np.testing.assert_allclose(parsed["image_id"].numpy(), [5])
