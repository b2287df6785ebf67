"""Config.BBOX_DELTA_CLAMP: which models clamp log(dh), log(dw) before exp
(torchvision's log(1000 / 16)), and that the RPN's and the detection
layer's decoding does it, against hand-worked boxes."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.network import architecture
from mrcnn.network.detection import DetectionLayer, refine_detections
from mrcnn.network.layer_names import DETECTIONS, PROPOSALS
from mrcnn.network.rpn import ProposalLayer
from mrcnn.structures.boxes import DELTA_CLAMP
from tests.tiny import TinyConfig

STD_DEV = (0.1, 0.1, 0.2, 0.2)
# An anchor of height 0.004 and width 0.006 centred on (0.502, 0.503);
# raw deltas (before STD_DEV) that ask for log(dh) = 50 * 0.2 = 10 and
# log(dw) = -5 * 0.2 = -1.
ANCHOR = [0.5, 0.5, 0.504, 0.506]
DELTAS = [0.0, 0.0, 50.0, -5.0]
# Clamped: height 0.004 * 62.5 = 0.25 about 0.502; width 0.006 / e.
HALF_WIDTH = 0.5 * 0.006 * math.exp(-1)
CLAMPED = [0.502 - 0.125, 0.503 - HALF_WIDTH, 0.502 + 0.125,
           0.503 + HALF_WIDTH]
# Not clamped: height 0.004 * e^10 = 88.1, clipped to the image [0, 1].
UNCLAMPED = [0.0, 0.503 - HALF_WIDTH, 1.0, 0.503 + HALF_WIDTH]


def config(precision=None, clamp=None):
    class Clamp(TinyConfig):
        NAME = "clamp"
        MIXED_PRECISION = precision
        BBOX_DELTA_CLAMP = clamp
    return Clamp()


@pytest.mark.parametrize("precision, clamp, expected", [
    (None, None, None),                 # the original's numbers
    ("mixed_bfloat16", None, None),
    ("mixed_float16", None, DELTA_CLAMP),
    ("mixed_float16", False, None),
    (None, True, DELTA_CLAMP),
])
def test_clamp_follows_the_config(precision, clamp, expected):
    assert architecture.delta_clamp(config(precision, clamp)) == expected


def test_clamp_is_log_of_1000_over_16():
    assert DELTA_CLAMP == pytest.approx(math.log(62.5))


def proposals(clamp, deltas=DELTAS):
    layer = ProposalLayer(proposal_count=1, nms_threshold=0.7,
                          pre_nms_limit=2, rpn_bbox_std_dev=STD_DEV,
                          delta_clamp=clamp)
    # A second anchor, less likely, which NMS count 1 leaves out.
    probs = tf.constant([[[0.1, 0.9], [0.8, 0.2]]], tf.float32)
    bbox = tf.constant([[deltas, [0.0, 0.0, 0.0, 0.0]]], tf.float32)
    anchors = tf.constant([[ANCHOR, [0.1, 0.1, 0.2, 0.2]]], tf.float32)
    return layer([probs, bbox, anchors]).numpy()[0, 0]


def test_rpn_decodes_with_and_without_the_clamp():
    np.testing.assert_allclose(proposals(DELTA_CLAMP), CLAMPED, atol=1e-6)
    np.testing.assert_allclose(proposals(None), UNCLAMPED, atol=1e-6)


def test_clamp_keeps_an_overflowed_delta_finite():
    """A float16 head that overflowed gives an inf delta: clamped, the
    box is the 62.5-fold one."""
    inf = [0.0, 0.0, float("inf"), -5.0]
    np.testing.assert_allclose(proposals(DELTA_CLAMP, inf), CLAMPED,
                               atol=1e-6)


def test_detections_decode_with_the_clamp():
    probs = tf.constant([[0.0, 1.0]], tf.float32)
    deltas = tf.constant([[[0.0] * 4, DELTAS]], tf.float32)
    window = tf.constant([0.0, 0.0, 1.0, 1.0])
    for clamp, expected in [(DELTA_CLAMP, CLAMPED), (None, UNCLAMPED)]:
        detections = refine_detections(
            tf.constant([ANCHOR]), probs, deltas, window, 1, 0.5, 0.3,
            STD_DEV, clamp).numpy()
        np.testing.assert_allclose(detections[0, :4], expected, atol=1e-6)
        assert detections[0, 4:].tolist() == [1.0, 1.0]


def test_layers_carry_the_clamp_through_the_graph_and_their_config():
    inputs, outputs = architecture.build_inference_graph(config(clamp=True))
    model = keras.Model(inputs, outputs)
    for name in (PROPOSALS, DETECTIONS):
        layer = model.get_layer(name)
        assert layer.delta_clamp == pytest.approx(DELTA_CLAMP)
        clone = type(layer).from_config(layer.get_config())
        assert clone.delta_clamp == pytest.approx(DELTA_CLAMP)
    assert DetectionLayer().delta_clamp is None
