"""Classifier and mask heads (mrcnn/network/heads.py)."""
import numpy as np
import pytest
import keras

from mrcnn.network import heads
from tests import tiny
from mrcnn.network.backbone import BatchNorm
from mrcnn.network.heads import (BboxReshape, FoldedTimeDistributed,
                                 build_fpn_mask_graph, fpn_classifier_graph)

NUM_CLASSES = 3
NUM_ROIS = 5
DEPTH = 8
META_SIZE = 12 + NUM_CLASSES
# A 64x64 image: P2..P5 are 16, 8, 4, 2 pixels wide.
LEVEL_SIDES = (16, 8, 4, 2)


def head_inputs(depth=DEPTH, num_rois=NUM_ROIS):
    rois = keras.Input((num_rois, 4), name="rois")
    meta = keras.Input((META_SIZE,), name="meta")
    maps = [keras.Input((side, side, depth)) for side in LEVEL_SIDES]
    return rois, meta, maps


def build_heads(train_bn=False, wrapper=None, monkeypatch=None):
    if wrapper is not None:
        monkeypatch.setattr(heads, "FoldedTimeDistributed", wrapper)
    rois, meta, maps = head_inputs()
    logits, probs, bbox = fpn_classifier_graph(
        rois, maps, meta, 7, NUM_CLASSES, train_bn=train_bn,
        fc_layers_size=16)
    masks = build_fpn_mask_graph(rois, maps, meta, 14, NUM_CLASSES,
                                 train_bn=train_bn, conv_depth=8)
    return keras.Model([rois, meta] + maps, [logits, probs, bbox, masks])


def head_data(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0.0, 0.6, size=(batch, NUM_ROIS, 2))
    size = rng.uniform(0.1, 0.4, size=(batch, NUM_ROIS, 2))
    rois = np.concatenate([corner, corner + size], axis=-1)
    meta = np.zeros((batch, META_SIZE))
    meta[:, 4:7] = [64, 64, 3]  # molded image shape
    maps = [rng.normal(size=(batch, side, side, DEPTH))
            for side in LEVEL_SIDES]
    return [a.astype("float32") for a in [rois, meta] + maps]


def randomize(model, seed=1):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.normal(0.0, 0.3, size=w.shape)
        if "variance" in w.name:
            value = np.abs(value) + 0.5
        w.assign(value.astype("float32"))


def test_output_shapes_and_values():
    model = build_heads()
    randomize(model)
    logits, probs, bbox, masks = model.predict(head_data(), verbose=0)
    assert logits.shape == (2, NUM_ROIS, NUM_CLASSES)
    assert probs.shape == (2, NUM_ROIS, NUM_CLASSES)
    assert bbox.shape == (2, NUM_ROIS, NUM_CLASSES, 4)
    assert masks.shape == (2, NUM_ROIS, 28, 28, NUM_CLASSES)
    # Softmax of the logits, sigmoid masks.
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(probs, exp / exp.sum(-1, keepdims=True),
                               rtol=1e-5, atol=1e-6)
    assert np.all((masks > 0) & (masks < 1))
    # Static shapes keep the ROI count (downstream layers rely on it).
    assert [tuple(t.shape) for t in model.outputs] == [
        (None, NUM_ROIS, NUM_CLASSES), (None, NUM_ROIS, NUM_CLASSES),
        (None, NUM_ROIS, NUM_CLASSES, 4),
        (None, NUM_ROIS, 28, 28, NUM_CLASSES)]


def test_dynamic_roi_count():
    rois = keras.Input((None, 4))
    meta = keras.Input((META_SIZE,))
    maps = [keras.Input((side, side, DEPTH)) for side in LEVEL_SIDES]
    outputs = fpn_classifier_graph(rois, maps, meta, 7, NUM_CLASSES,
                                   fc_layers_size=16)
    model = keras.Model([rois, meta] + maps, list(outputs))
    data = head_data()
    for count in (1, 4):
        shapes = [o.shape for o in model.predict(
            [data[0][:, :count]] + data[1:], verbose=0)]
        assert shapes == [(2, count, NUM_CLASSES)] * 2 + [
            (2, count, NUM_CLASSES, 4)]


def test_folding_equals_keras_time_distributed(monkeypatch):
    """Same weights, same numbers as matterport's TimeDistributed graph."""
    folded = build_heads()
    randomize(folded)
    data = head_data()
    expected = folded.predict(data, verbose=0)
    reference = build_heads(wrapper=keras.layers.TimeDistributed,
                            monkeypatch=monkeypatch)
    assert [w.shape for w in reference.weights] == \
        [w.shape for w in folded.weights]
    reference.set_weights(folded.get_weights())
    for got, want in zip(reference.predict(data, verbose=0), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_folded_batchnorm_uses_statistics_of_all_rois():
    # Matterport's Keras 2 TimeDistributed reshaped ROIs into the batch, so
    # training-mode BN statistics pool every ROI of every image.
    layer = FoldedTimeDistributed(BatchNorm(train_bn=None), name="bn")
    x = np.random.default_rng(3).normal(2.0, 3.0, size=(2, 3, 1, 1, 4))
    x = x.astype("float32")
    out = layer(x, training=True).numpy()
    mean = x.mean(axis=(0, 1, 2, 3))
    var = x.var(axis=(0, 1, 2, 3))
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-3),
                               rtol=1e-4, atol=1e-5)


MATTERPORT_WEIGHT_SHAPES = {
    # Matterport's COCO model: 256-channel pyramid, 81 classes, 7x7 pool,
    # 1024 "fc" channels, TimeDistributed-wrapped layers.
    "mrcnn_class_conv1": [(7, 7, 256, 1024), (1024,)],
    "mrcnn_class_bn1": [(1024,)] * 4,
    "mrcnn_class_conv2": [(1, 1, 1024, 1024), (1024,)],
    "mrcnn_class_bn2": [(1024,)] * 4,
    "mrcnn_class_logits": [(1024, 81), (81,)],
    "mrcnn_bbox_fc": [(1024, 324), (324,)],
    "mrcnn_mask_conv1": [(3, 3, 256, 256), (256,)],
    "mrcnn_mask_bn1": [(256,)] * 4,
    "mrcnn_mask_conv2": [(3, 3, 256, 256), (256,)],
    "mrcnn_mask_bn2": [(256,)] * 4,
    "mrcnn_mask_conv3": [(3, 3, 256, 256), (256,)],
    "mrcnn_mask_bn3": [(256,)] * 4,
    "mrcnn_mask_conv4": [(3, 3, 256, 256), (256,)],
    "mrcnn_mask_bn4": [(256,)] * 4,
    # Conv2DTranspose kernels are (h, w, out, in).
    "mrcnn_mask_deconv": [(2, 2, 256, 256), (256,)],
    "mrcnn_mask": [(1, 1, 256, 81), (81,)],
}


def test_weight_names_and_shapes_equal_matterport():
    rois, meta, maps = head_inputs(depth=256, num_rois=2)
    outputs = list(fpn_classifier_graph(rois, maps, meta, 7, 81))
    outputs.append(build_fpn_mask_graph(rois, maps, meta, 14, 81))
    model = keras.Model([rois, meta] + maps, outputs)
    shapes = {layer.name: [tuple(w.shape) for w in layer.weights]
              for layer in model.layers if layer.weights}
    assert shapes == MATTERPORT_WEIGHT_SHAPES
    names = {layer.name for layer in model.layers}
    assert {"roi_align_classifier", "roi_align_mask", "pool_squeeze",
            "mrcnn_class", "mrcnn_bbox"} <= names
    # BN weights in Keras order: gamma, beta, moving mean, moving variance.
    bn = model.get_layer("mrcnn_class_bn1")
    assert [w.name for w in bn.weights] == [
        "gamma", "beta", "moving_mean", "moving_variance"]


def test_custom_layers_survive_config_round_trip():
    inputs = keras.Input((4, 3, 3, 2))
    x = FoldedTimeDistributed(keras.layers.Conv2D(6, (3, 3)), name="conv")(
        inputs)
    x = heads.PoolSqueeze(name="pool_squeeze")(x)  # [batch, 4, 6]
    x = BboxReshape(num_classes=3, name="bbox")(keras.layers.Dense(12)(x))
    model = keras.Model(inputs, x)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    data = np.random.default_rng(4).normal(size=(2, 4, 3, 3, 2))
    np.testing.assert_allclose(clone.predict(data, verbose=0),
                               model.predict(data, verbose=0), rtol=1e-6)
    assert model.output.shape == (None, 4, 3, 4)


@pytest.mark.parametrize("train_bn", [False, None])
def test_train_bn_reaches_head_batchnorms(train_bn):
    model = build_heads(train_bn=train_bn)
    bn_layers = [layer.layer for layer in model.layers
                 if isinstance(layer, FoldedTimeDistributed)
                 and isinstance(layer.layer, BatchNorm)]
    assert len(bn_layers) == 6
    assert all(layer.train_bn is train_bn for layer in bn_layers)


def test_mixed_precision_outputs_are_float32():
    tiny.skip_if_16_bit_floats_cannot_run()
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_heads()
        outputs = model.predict(head_data(), verbose=0)
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    assert [o.dtype for o in outputs] == [np.float32] * 4
    assert model.get_layer("mrcnn_class_conv1").compute_dtype == "bfloat16"
    assert all(np.all(np.isfinite(o)) for o in outputs)
