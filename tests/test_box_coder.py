"""The one box coder: encode_boxes / decode_boxes (numpy) and their graph
twins encode_boxes_graph / decode_boxes_graph, held equal to each other, to
a per-box reference written with the math module, to hand-worked values,
and to their own inverse."""
import math

import numpy as np
import pytest
import tensorflow as tf

from mrcnn import utils
from mrcnn.network import box_ops
from mrcnn.structures.boxes import DELTA_CLAMP, decode_boxes, encode_boxes

STD_DEV = (0.1, 0.1, 0.2, 0.2)


def random_boxes(rng, n, high=100.0):
    """[n, (y1, x1, y2, x2)] float32 boxes with positive sizes."""
    corner = rng.uniform(0.0, high, size=(n, 2))
    size = rng.uniform(1.0, high / 2, size=(n, 2))
    return np.concatenate([corner, corner + size], 1).astype(np.float32)


def wild_deltas(rng, n):
    """[n, 4] float32 deltas; a third have log(dh), log(dw) far above the
    clamp even after multiplying by STD_DEV (30 * 0.2 = 6 > log(62.5))."""
    deltas = rng.normal(scale=0.5, size=(n, 4))
    deltas[: n // 3, 2:] = rng.uniform(25.0, 30.0, size=(n // 3, 2))
    return deltas.astype(np.float32)


def reference_decode(box, delta, std_dev, clamp):
    """One box, float64, with the math module: center and size moved."""
    std_dev = std_dev or (1.0, 1.0, 1.0, 1.0)
    dy, dx, dh, dw = [d * s for d, s in zip(delta, std_dev)]
    if clamp is not None:
        dh, dw = min(dh, clamp), min(dw, clamp)
    height, width = box[2] - box[0], box[3] - box[1]
    cy = box[0] + height / 2 + dy * height
    cx = box[1] + width / 2 + dx * width
    height, width = height * math.exp(dh), width * math.exp(dw)
    return [cy - height / 2, cx - width / 2, cy + height / 2, cx + width / 2]


def reference_encode(box, gt_box, std_dev):
    """One box, float64: (dy, dx, log(dh), log(dw)) / std_dev."""
    std_dev = std_dev or (1.0, 1.0, 1.0, 1.0)
    height, width = box[2] - box[0], box[3] - box[1]
    gt_height, gt_width = gt_box[2] - gt_box[0], gt_box[3] - gt_box[1]
    deltas = [(gt_box[0] + gt_height / 2 - box[0] - height / 2) / height,
              (gt_box[1] + gt_width / 2 - box[1] - width / 2) / width,
              math.log(gt_height / height), math.log(gt_width / width)]
    return [d / s for d, s in zip(deltas, std_dev)]


@pytest.mark.parametrize("std_dev", [None, STD_DEV])
@pytest.mark.parametrize("clamp", [None, DELTA_CLAMP])
def test_decode_numpy_graph_and_reference_agree(std_dev, clamp):
    rng = np.random.default_rng(0)
    boxes = random_boxes(rng, 60)
    deltas = wild_deltas(rng, 60)
    if clamp is None:
        deltas[:20, 2:] /= 10  # exp stays finite in float32 without clamp
    got = decode_boxes(boxes, deltas, std_dev, clamp)
    graph = box_ops.decode_boxes_graph(tf.constant(boxes),
                                       tf.constant(deltas), std_dev,
                                       clamp).numpy()
    want = np.array([reference_decode(b, d, std_dev, clamp)
                     for b, d in zip(boxes.astype(float),
                                     deltas.astype(float))])
    assert got.dtype == graph.dtype == np.float32
    # float32 rounding, relative to the size of the (grown) boxes.
    scale = np.abs(want).max(axis=1, keepdims=True)
    np.testing.assert_allclose(got / scale, want / scale, atol=1e-5)
    np.testing.assert_allclose(graph / scale, got / scale, atol=1e-6)


@pytest.mark.parametrize("std_dev", [None, STD_DEV])
def test_encode_numpy_graph_and_reference_agree(std_dev):
    rng = np.random.default_rng(1)
    boxes, gt_boxes = random_boxes(rng, 60), random_boxes(rng, 60)
    got = encode_boxes(boxes, gt_boxes, std_dev)
    graph = box_ops.encode_boxes_graph(tf.constant(boxes),
                                       tf.constant(gt_boxes),
                                       std_dev).numpy()
    want = np.array([reference_encode(b, g, std_dev)
                     for b, g in zip(boxes.astype(float),
                                     gt_boxes.astype(float))])
    assert got.dtype == graph.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(graph, got, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("std_dev", [None, STD_DEV])
@pytest.mark.parametrize("clamp", [None, DELTA_CLAMP])
def test_decode_inverts_encode(std_dev, clamp):
    # The random boxes differ in size by far less than 62.5 times, so the
    # clamp leaves the round trip alone.
    rng = np.random.default_rng(2)
    boxes, gt_boxes = random_boxes(rng, 50), random_boxes(rng, 50)
    deltas = encode_boxes(boxes, gt_boxes, std_dev)
    np.testing.assert_allclose(decode_boxes(boxes, deltas, std_dev, clamp),
                               gt_boxes, atol=1e-3)
    graph_deltas = box_ops.encode_boxes_graph(boxes, gt_boxes, std_dev)
    round_trip = box_ops.decode_boxes_graph(tf.constant(boxes), graph_deltas,
                                            std_dev, clamp).numpy()
    np.testing.assert_allclose(round_trip, gt_boxes, atol=1e-3)


def test_encode_hand_worked():
    # Box 10 high, 20 wide; GT shifted down by half the height (5 / 10),
    # right by half the width ((20 - 10) / 20), same height, twice as wide.
    box, gt = [[0, 0, 10, 20]], [[5, 0, 15, 40]]
    want = np.array([[0.5, 0.5, 0.0, np.log(2.0)]])
    np.testing.assert_allclose(encode_boxes(box, gt), want, atol=1e-6)
    np.testing.assert_allclose(encode_boxes(box, gt, STD_DEV),
                               [[5.0, 5.0, 0.0, np.log(2.0) / 0.2]],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        box_ops.encode_boxes_graph(box, gt, STD_DEV).numpy(),
        [[5.0, 5.0, 0.0, np.log(2.0) / 0.2]], rtol=1e-6, atol=1e-6)


def test_decode_hand_worked_with_std_dev():
    # Raw deltas times STD_DEV = (0.1, 0.2, log 2, 0): centre (5, 5) moves
    # by (0.1 * 10, 0.2 * 10) = (6, 7); height doubles to 20, width stays.
    raw = [[1.0, 2.0, np.log(2.0) / 0.2, 0.0]]
    want = [[-4.0, 2.0, 16.0, 12.0]]
    np.testing.assert_allclose(decode_boxes([[0, 0, 10, 10]], raw, STD_DEV),
                               want, atol=1e-5)
    np.testing.assert_allclose(
        box_ops.decode_boxes_graph(tf.constant([[0., 0., 10., 10.]]),
                                   tf.constant(raw, tf.float32),
                                   STD_DEV).numpy(), want, atol=1e-5)


def test_clamp_caps_growth_at_62_5_and_only_from_above():
    assert DELTA_CLAMP == pytest.approx(math.log(62.5))
    # Unit box centred on (0.5, 0.5): log(dh) = 10 is capped to log(62.5),
    # log(dw) = -10 is not (the clamp is an upper bound, as torchvision's).
    box, deltas = [[0.0, 0.0, 1.0, 1.0]], [[0.0, 0.0, 10.0, -10.0]]
    half_width = math.exp(-10.0) / 2
    want = [[0.5 - 31.25, 0.5 - half_width, 0.5 + 31.25, 0.5 + half_width]]
    np.testing.assert_allclose(decode_boxes(box, deltas, clamp=DELTA_CLAMP),
                               want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        box_ops.decode_boxes_graph(tf.constant(box), tf.constant(deltas),
                                   clamp=DELTA_CLAMP).numpy(),
        want, rtol=1e-6, atol=1e-6)
    # Off by default: the box grows by exp(10) as in matterport.
    unclamped = decode_boxes(box, deltas)
    assert unclamped[0, 2] - unclamped[0, 0] == pytest.approx(
        math.exp(10.0), rel=1e-6)


def test_clamp_keeps_exp_finite_in_float32():
    boxes = tf.constant([[0.0, 0.0, 1.0, 1.0]])
    deltas = tf.constant([[0.0, 0.0, 200.0, 200.0]])
    assert not np.isfinite(box_ops.decode_boxes_graph(boxes, deltas)).all()
    clamped = box_ops.decode_boxes_graph(boxes, deltas, clamp=DELTA_CLAMP)
    assert np.isfinite(clamped.numpy()).all()


def test_std_dev_multiplies_decode_and_divides_encode():
    # The std-dev weights are the only difference from the bare coder.
    rng = np.random.default_rng(3)
    boxes, gt_boxes = random_boxes(rng, 30), random_boxes(rng, 30)
    deltas = rng.normal(size=(30, 4)).astype(np.float32)
    std = np.array(STD_DEV, np.float32)
    np.testing.assert_array_equal(decode_boxes(boxes, deltas, STD_DEV),
                                  decode_boxes(boxes, deltas * std))
    np.testing.assert_array_equal(encode_boxes(boxes, gt_boxes, STD_DEV),
                                  encode_boxes(boxes, gt_boxes) / std)


def test_matterport_names_are_the_bare_coder():
    rng = np.random.default_rng(4)
    boxes, gt_boxes = random_boxes(rng, 30), random_boxes(rng, 30)
    deltas = rng.normal(scale=0.5, size=(30, 4)).astype(np.float32)
    np.testing.assert_array_equal(utils.apply_box_deltas(boxes, deltas),
                                  decode_boxes(boxes, deltas))
    np.testing.assert_array_equal(utils.box_refinement(boxes, gt_boxes),
                                  encode_boxes(boxes, gt_boxes))
    np.testing.assert_array_equal(
        box_ops.apply_box_deltas_graph(tf.constant(boxes),
                                       tf.constant(deltas)),
        box_ops.decode_boxes_graph(tf.constant(boxes), tf.constant(deltas)))
    np.testing.assert_array_equal(
        box_ops.box_refinement_graph(boxes, gt_boxes),
        box_ops.encode_boxes_graph(boxes, gt_boxes))


def test_coders_take_any_leading_shape():
    rng = np.random.default_rng(5)
    boxes, gt_boxes = random_boxes(rng, 24), random_boxes(rng, 24)
    flat = encode_boxes(boxes, gt_boxes, STD_DEV)
    batched = encode_boxes(boxes.reshape(2, 3, 4, 4),
                           gt_boxes.reshape(2, 3, 4, 4), STD_DEV)
    np.testing.assert_array_equal(batched.reshape(-1, 4), flat)
    graph = box_ops.decode_boxes_graph(boxes.reshape(2, 12, 4),
                                       flat.reshape(2, 12, 4), STD_DEV)
    np.testing.assert_allclose(graph.numpy().reshape(-1, 4),
                               decode_boxes(boxes, flat, STD_DEV),
                               rtol=1e-6, atol=1e-4)


def test_graph_dtypes():
    # The encoder works in float32 whatever it gets (mixed precision);
    # the decoder keeps the dtype of the boxes, which the layers cast to
    # float32 first.
    boxes = tf.constant([[0.0, 0.0, 10.0, 20.0]], tf.float16)
    gt = tf.constant([[5.0, 0.0, 15.0, 40.0]], tf.float16)
    assert box_ops.encode_boxes_graph(boxes, gt, STD_DEV).dtype == tf.float32
    deltas = tf.zeros([1, 4], tf.float16)
    assert box_ops.decode_boxes_graph(boxes, deltas, STD_DEV,
                                      DELTA_CLAMP).dtype == tf.float16
    assert box_ops.decode_boxes_graph(
        tf.cast(boxes, tf.float32), tf.zeros([1, 4]),
        STD_DEV).dtype == tf.float32
