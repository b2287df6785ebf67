"""RPN head and ProposalLayer against numpy references written here
(on top of mrcnn.utils.apply_box_deltas and non_max_suppression)."""
import keras
import numpy as np
import pytest

from mrcnn import utils
from mrcnn.network.rpn import ProposalLayer, build_rpn_model

STD_DEV = np.array([0.1, 0.1, 0.2, 0.2], np.float32)


############################################################
#  numpy references
############################################################

def np_greedy_nms(boxes, scores, threshold, max_out):
    """Greedy NMS capped at max_out: the first max_out of the uncapped
    result, since greedy NMS picks boxes best score first."""
    return utils.non_max_suppression(boxes, scores, threshold)[:max_out]


def np_proposals(probs, deltas, anchors, proposal_count, nms_threshold,
                 pre_nms_limit):
    """matterport's ProposalLayer, one image at a time, in numpy."""
    out = np.zeros((len(probs), proposal_count, 4), np.float32)
    kept_counts = []
    for b in range(len(probs)):
        scores = probs[b, :, 1]
        order = np.argsort(-scores, kind="stable")[:pre_nms_limit]
        boxes = utils.apply_box_deltas(anchors[b, order],
                                       deltas[b, order] * STD_DEV)
        boxes = np.clip(boxes, 0.0, 1.0)
        keep = np_greedy_nms(boxes, scores[order], nms_threshold,
                             proposal_count)
        out[b, :len(keep)] = boxes[keep]
        kept_counts.append(len(keep))
    return out, kept_counts


def random_rpn_inputs(rng, batch, num_anchors):
    """Random softmax scores, deltas and anchors, some sticking out of
    the image so that clipping matters."""
    logits = rng.normal(size=(batch, num_anchors, 2)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    deltas = rng.normal(size=(batch, num_anchors, 4)).astype(np.float32)
    centers = rng.uniform(-0.1, 1.1, size=(batch, num_anchors, 2))
    sizes = rng.uniform(0.05, 0.4, size=(batch, num_anchors, 2))
    anchors = np.concatenate([centers - sizes / 2, centers + sizes / 2], -1)
    return (probs.astype(np.float32), deltas,
            anchors.astype(np.float32))


############################################################
#  ProposalLayer
############################################################

def test_proposals_match_numpy_reference():
    rng = np.random.default_rng(0)
    probs, deltas, anchors = random_rpn_inputs(rng, 2, 500)
    layer = ProposalLayer(proposal_count=60, nms_threshold=0.7,
                          pre_nms_limit=300)
    got = np.asarray(layer([probs, deltas, anchors]))
    want, kept = np_proposals(probs, deltas, anchors, 60, 0.7, 300)
    assert got.shape == (2, 60, 4)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)
    # The case is only meaningful if clipping and NMS both did something.
    assert kept == [60, 60]
    assert np.any(want == 0.0) and np.any(want == 1.0)
    assert got.min() >= 0.0 and got.max() <= 1.0


def test_proposals_zero_padded_when_nms_keeps_few():
    rng = np.random.default_rng(1)
    # Fewer anchors than pre_nms_limit and than proposal_count.
    probs, deltas, anchors = random_rpn_inputs(rng, 2, 40)
    layer = ProposalLayer(proposal_count=100, nms_threshold=0.3,
                          pre_nms_limit=6000)
    got = np.asarray(layer([probs, deltas, anchors]))
    want, kept = np_proposals(probs, deltas, anchors, 100, 0.3, 6000)
    np.testing.assert_allclose(got, want, atol=1e-5)
    for b, n in enumerate(kept):
        assert 0 < n < 40  # some suppressed
        assert np.all(np.abs(got[b, :n]).sum(-1) > 0)
        assert np.all(got[b, n:] == 0.0)


def test_proposals_float16_inputs_give_float32():
    rng = np.random.default_rng(2)
    probs, deltas, anchors = random_rpn_inputs(rng, 1, 100)
    # float16 rounding would tie random scores, and ties may be ordered
    # either way: use scores that stay distinct in float16.
    foreground = rng.permutation(np.linspace(0.01, 0.99, 100))
    probs = np.stack([1 - foreground, foreground], -1)[None]
    layer = ProposalLayer(proposal_count=20, nms_threshold=0.7)
    got = layer([probs.astype(np.float16), deltas.astype(np.float16),
                 anchors])
    assert got.dtype == "float32"
    want, _ = np_proposals(probs.astype(np.float16).astype(np.float32),
                           deltas.astype(np.float16).astype(np.float32),
                           anchors, 20, 0.7, 6000)
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)


def test_proposal_layer_config_round_trip():
    layer = ProposalLayer(proposal_count=33, nms_threshold=0.6,
                          pre_nms_limit=77, rpn_bbox_std_dev=(1, 2, 3, 4),
                          name="ROI")
    clone = ProposalLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.proposal_count, clone.nms_threshold, clone.pre_nms_limit,
            clone.rpn_bbox_std_dev, clone.name) == (
                33, 0.6, 77, (1.0, 2.0, 3.0, 4.0), "ROI")


def test_proposal_layer_rejects_bad_std_dev():
    with pytest.raises(ValueError, match="rpn_bbox_std_dev"):
        ProposalLayer(10, 0.7, rpn_bbox_std_dev=(0.1, 0.1))


def test_proposal_layer_in_functional_model():
    rng = np.random.default_rng(3)
    probs, deltas, anchors = random_rpn_inputs(rng, 3, 200)
    inputs = [keras.Input((None, 2)), keras.Input((None, 4)),
              keras.Input((None, 4))]
    proposals = ProposalLayer(proposal_count=25, nms_threshold=0.7,
                              pre_nms_limit=150, name="ROI")(inputs)
    assert tuple(proposals.shape) == (None, 25, 4)
    model = keras.Model(inputs, proposals)
    got = model.predict([probs, deltas, anchors], batch_size=2, verbose=0)
    want, _ = np_proposals(probs, deltas, anchors, 25, 0.7, 150)
    np.testing.assert_allclose(got, want, atol=1e-5)


############################################################
#  RPN head
############################################################

def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("anchor_stride", [1, 2])
def test_rpn_model_outputs_match_numpy(anchor_stride):
    anchors_per_location, depth = 3, 8
    model = build_rpn_model(anchor_stride, anchors_per_location, depth,
                            conv_depth=16)
    assert model.name == "rpn_model"
    assert model.inputs[0].name == "input_rpn_feature_map"
    kernels = {name: tuple(model.get_layer(name).kernel.shape)
               for name in ("rpn_conv_shared", "rpn_class_raw",
                            "rpn_bbox_pred")}
    assert kernels == {"rpn_conv_shared": (3, 3, depth, 16),
                       "rpn_class_raw": (1, 1, 16, 2 * anchors_per_location),
                       "rpn_bbox_pred": (1, 1, 16, 4 * anchors_per_location)}
    assert model.get_layer("rpn_conv_shared").strides == (anchor_stride,) * 2

    rng = np.random.default_rng(4)
    feature_map = rng.normal(size=(2, 6, 5, depth)).astype(np.float32)
    logits, probs, bbox = model.predict(feature_map, verbose=0)

    # The 1x1 convolutions and the reshapes, redone in numpy from the
    # shared features: anchors are ordered (y, x, anchor) as the anchor
    # generator orders them.
    shared_model = keras.Model(model.inputs,
                               model.get_layer("rpn_conv_shared").output)
    shared = shared_model.predict(feature_map, verbose=0)
    h, w = shared.shape[1:3]
    assert (h, w) == (-(-6 // anchor_stride), -(-5 // anchor_stride))
    num_anchors = h * w * anchors_per_location

    def one_by_one(name):
        layer = model.get_layer(name)
        kernel, bias = (np.asarray(v) for v in layer.weights)
        return shared @ kernel[0, 0] + bias

    want_logits = one_by_one("rpn_class_raw").reshape(2, num_anchors, 2)
    want_bbox = one_by_one("rpn_bbox_pred").reshape(2, num_anchors, 4)
    np.testing.assert_allclose(logits, want_logits, atol=1e-4)
    np.testing.assert_allclose(probs, np_softmax(want_logits), atol=1e-5)
    np.testing.assert_allclose(bbox, want_bbox, atol=1e-4)


def test_rpn_model_shared_across_feature_map_sizes():
    model = build_rpn_model(1, 3, 4, conv_depth=8)
    inp_a = keras.Input((None, None, 4))
    inp_b = keras.Input((None, None, 4))
    out_a = model(inp_a)
    out_b = model(inp_b)
    two_levels = keras.Model([inp_a, inp_b], out_a + out_b)
    rng = np.random.default_rng(5)
    big = rng.normal(size=(1, 8, 8, 4)).astype(np.float32)
    small = big[:, ::2, ::2]
    outs = two_levels.predict([big, small], verbose=0)
    assert [o.shape for o in outs] == [
        (1, 192, 2), (1, 192, 2), (1, 192, 4),
        (1, 48, 2), (1, 48, 2), (1, 48, 4)]
    # Same weights: the small map alone gives the same values.
    np.testing.assert_allclose(outs[3], model.predict(small, verbose=0)[0],
                               atol=1e-5)


def test_proposallayer_deserializes_without_custom_objects():
    # Registered with Keras, so saved models load without custom_objects.
    layer = ProposalLayer(proposal_count=33, nms_threshold=0.6)
    clone = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert type(clone) is ProposalLayer
    assert clone.get_config() == layer.get_config()
