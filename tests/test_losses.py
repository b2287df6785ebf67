"""The training losses against hand-worked values and numpy references."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.network import losses


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def numpy_smooth_l1(diff):
    diff = np.abs(diff)
    return np.where(diff < 1, 0.5 * diff ** 2, diff - 0.5)


def numpy_bce(target, prob):
    return -(target * np.log(prob) + (1 - target) * np.log(1 - prob))


def value(tensor):
    assert tensor.dtype == tf.float32 and tensor.shape == ()
    return float(tensor.numpy())


def test_smooth_l1_hand_values():
    result = losses.smooth_l1_loss(tf.constant([0.0, 0.0, 1.0, 3.0]),
                                   tf.constant([0.5, -2.0, 0.0, 3.0]))
    np.testing.assert_allclose(result.numpy(), [0.125, 1.5, 0.5, 0.0])


# --- RPN class loss ----------------------------------------------------

def test_rpn_class_loss_hand_value():
    # Equal logits: every used anchor costs log(2); neutral anchors (huge
    # logits here) must not count.
    match = np.array([[[1], [-1], [0]], [[0], [0], [1]]], np.int32)
    logits = np.zeros([2, 3, 2], np.float32)
    logits[0, 2] = logits[1, 0] = [50.0, -50.0]
    loss = value(losses.rpn_class_loss_graph(match, logits))
    assert loss == pytest.approx(np.log(2.0), rel=1e-6)


def test_rpn_class_loss_numpy_reference():
    rng = np.random.default_rng(0)
    match = rng.choice([-1, 0, 1], size=(3, 20, 1)).astype(np.int32)
    logits = rng.normal(size=(3, 20, 2)).astype(np.float32)
    used = match[..., 0] != 0
    labels = (match[..., 0] == 1).astype(int)
    log_probs = np.take_along_axis(log_softmax(logits.astype(np.float64)),
                                   labels[..., None], axis=-1)[..., 0]
    expected = -log_probs[used].mean()
    assert value(losses.rpn_class_loss_graph(match, logits)) == \
        pytest.approx(expected, rel=1e-5)


# --- RPN bbox loss -----------------------------------------------------

def rpn_bbox_case(rng):
    """Batch of 2: positives at anchors 1, 3, 4 and 2; 6 target rows."""
    match = np.zeros([2, 6, 1], np.int32)
    match[0, [1, 3, 4], 0] = 1
    match[0, [0, 5], 0] = -1
    match[1, 2, 0] = 1
    targets = np.zeros([2, 6, 4], np.float32)
    targets[0, :3] = rng.normal(size=(3, 4))
    targets[1, :1] = rng.normal(size=(1, 4))
    predictions = rng.normal(size=(2, 6, 4)).astype(np.float32)
    return targets, match, predictions


def test_rpn_bbox_loss_pairs_positives_with_target_rows_in_order():
    targets, match, predictions = rpn_bbox_case(np.random.default_rng(1))
    pairs = [(targets[0, 0], predictions[0, 1]),
             (targets[0, 1], predictions[0, 3]),
             (targets[0, 2], predictions[0, 4]),
             (targets[1, 0], predictions[1, 2])]
    expected = np.mean([numpy_smooth_l1(t.astype(np.float64) - p)
                        for t, p in pairs])
    loss = value(losses.rpn_bbox_loss_graph(targets, match, predictions))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_rpn_bbox_loss_with_unknown_batch_size():
    targets, match, predictions = rpn_bbox_case(np.random.default_rng(2))
    graph = tf.function(losses.rpn_bbox_loss_graph, input_signature=[
        tf.TensorSpec([None, None, 4], tf.float32),
        tf.TensorSpec([None, None, 1], tf.int32),
        tf.TensorSpec([None, None, 4], tf.float32)])
    eager = losses.rpn_bbox_loss_graph(targets, match, predictions)
    assert value(graph(targets, match, predictions)) == pytest.approx(
        value(eager), rel=1e-6)


def test_rpn_bbox_loss_hand_value():
    # One positive, diff (0.5, -2, 0, 1): (0.125 + 1.5 + 0 + 0.5) / 4.
    match = np.array([[[0], [1]]], np.int32)
    targets = np.array([[[0.5, -2.0, 0.0, 1.0]]], np.float32)
    predictions = np.zeros([1, 2, 4], np.float32)
    predictions[0, 0] = 100.0  # neutral anchor: ignored
    loss = value(losses.rpn_bbox_loss_graph(targets, match, predictions))
    assert loss == pytest.approx(2.125 / 4)


# --- MRCNN class loss --------------------------------------------------

def test_mrcnn_class_loss_uses_each_images_active_classes():
    # 3 classes. Image 0's dataset has classes {0, 1}, image 1's {0, 2}.
    active = np.array([[1, 1, 0], [1, 0, 1]], np.float32)
    targets = np.array([[1, 0], [2, 0]], np.int32)
    logits = np.array([
        [[0.0, 2.0, 0.5], [0.1, 0.2, 3.0]],   # predicts 1 (kept), 2 (not)
        [[0.0, 0.5, 2.0], [1.0, 2.0, 0.0]],   # predicts 2 (kept), 1 (not)
    ], np.float32)
    ce = -np.take_along_axis(log_softmax(logits.astype(np.float64)),
                             targets[..., None], axis=-1)[..., 0]
    expected = (ce[0, 0] + ce[1, 0]) / 2
    loss = value(losses.mrcnn_class_loss_graph(targets, logits, active))
    assert loss == pytest.approx(expected, rel=1e-5)
    # matterport's image-0-only weighting would give another value.
    image0_weights = active[0][logits.argmax(-1)]
    assert abs(loss - (ce * image0_weights).sum() / image0_weights.sum()) > 0.1


def test_mrcnn_class_loss_numpy_reference():
    rng = np.random.default_rng(3)
    targets = rng.integers(0, 4, size=(2, 10)).astype(np.int32)
    logits = rng.normal(size=(2, 10, 4)).astype(np.float32)
    active = np.array([[1, 1, 1, 0], [1, 0, 1, 1]], np.float32)
    ce = -np.take_along_axis(log_softmax(logits.astype(np.float64)),
                             targets[..., None], axis=-1)[..., 0]
    weights = np.take_along_axis(active, logits.argmax(-1), axis=1)
    expected = (ce * weights).sum() / weights.sum()
    loss = value(losses.mrcnn_class_loss_graph(targets, logits, active))
    assert loss == pytest.approx(expected, rel=1e-5)


# --- MRCNN bbox and mask losses ----------------------------------------

def test_mrcnn_bbox_loss_hand_value():
    # ROI 1 is class 2: only its class-2 deltas count, diff (0.5, 0, 2, 0).
    targets = np.zeros([1, 3, 4], np.float32)
    targets[0, 1] = [0.5, 0.0, 2.0, 0.0]
    class_ids = np.array([[0, 2, 0]], np.int32)
    predictions = np.full([1, 3, 3, 4], 7.0, np.float32)
    predictions[0, 1, 2] = 0.0
    loss = value(losses.mrcnn_bbox_loss_graph(targets, class_ids,
                                              predictions))
    assert loss == pytest.approx((0.125 + 1.5) / 4)


def test_mrcnn_bbox_loss_numpy_reference():
    rng = np.random.default_rng(4)
    class_ids = np.array([[1, 3, 0, 2, 0], [0, 0, 0, 3, 0]], np.int32)
    targets = rng.normal(size=(2, 5, 4)).astype(np.float32)
    predictions = rng.normal(size=(2, 5, 4, 4)).astype(np.float32)
    diffs = [targets[b, r].astype(np.float64) - predictions[b, r, c]
             for (b, r), c in np.ndenumerate(class_ids) if c > 0]
    expected = numpy_smooth_l1(np.array(diffs)).mean()
    loss = value(losses.mrcnn_bbox_loss_graph(targets, class_ids,
                                              predictions))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_mrcnn_mask_loss_numpy_reference():
    rng = np.random.default_rng(5)
    class_ids = np.array([[2, 0, 1], [0, 0, 2]], np.int32)
    targets = (rng.uniform(size=(2, 3, 4, 5)) > 0.5).astype(np.float32)
    predictions = rng.uniform(0.05, 0.95, size=(2, 3, 4, 5, 3)).astype(
        np.float32)
    terms = [numpy_bce(targets[b, r], predictions[b, r, :, :, c]
                       .astype(np.float64))
             for (b, r), c in np.ndenumerate(class_ids) if c > 0]
    expected = np.mean(terms)
    loss = value(losses.mrcnn_mask_loss_graph(targets, class_ids,
                                              predictions))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_mrcnn_mask_loss_hand_value():
    # One positive ROI, 1 x 2 mask: targets (1, 0), predicted (0.5, 0.5)
    # for its class 1 -> log(2) per pixel. Class 0 predictions are ignored.
    targets = np.array([[[[1.0, 0.0]]]], np.float32)
    predictions = np.zeros([1, 1, 1, 2, 2], np.float32) + 0.01
    predictions[..., 1] = 0.5
    loss = value(losses.mrcnn_mask_loss_graph(targets, np.array([[1]]),
                                              predictions))
    assert loss == pytest.approx(np.log(2.0), rel=1e-6)


# --- Shared properties -------------------------------------------------

def loss_cases(rng, with_positives=True):
    """(function, inputs, index of the prediction input) for every loss."""
    batch, anchors, rois, classes = 2, 8, 4, 3
    match = rng.choice([-1, 1], size=(batch, anchors, 1)).astype(np.int32)
    if not with_positives:
        match[:] = np.where(match > 0, 0, match)
    class_ids = rng.integers(1, classes, size=(batch, rois)).astype(np.int32)
    class_ids[:, 0] = 0
    if not with_positives:
        class_ids[:] = 0
    active = np.ones([batch, classes], np.float32)
    return [
        (losses.rpn_class_loss_graph,
         [match, rng.normal(size=(batch, anchors, 2))], 1),
        (losses.rpn_bbox_loss_graph,
         [rng.normal(size=(batch, anchors, 4)), match,
          rng.normal(size=(batch, anchors, 4))], 2),
        (losses.mrcnn_class_loss_graph,
         [class_ids, rng.normal(size=(batch, rois, classes)), active], 1),
        (losses.mrcnn_bbox_loss_graph,
         [rng.normal(size=(batch, rois, 4)), class_ids,
          rng.normal(size=(batch, rois, classes, 4))], 2),
        (losses.mrcnn_mask_loss_graph,
         [(rng.uniform(size=(batch, rois, 6, 6)) > 0.5),
          class_ids, rng.uniform(size=(batch, rois, 6, 6, classes))], 2),
    ]


def as_tensors(inputs):
    return [tf.constant(x, tf.float32) if np.asarray(x).dtype.kind == "f"
            else tf.constant(x) for x in inputs]


def test_zero_positives_give_exactly_zero_and_zero_gradient():
    # rpn_class_loss has no positives-only form: with no used anchor at all.
    rng = np.random.default_rng(6)
    cases = loss_cases(rng, with_positives=False)
    cases[0][1][0][:] = 0
    cases[2][1][2][:] = 0  # mrcnn class loss: no active class, no weight
    for function, inputs, prediction_index in cases:
        tensors = as_tensors(inputs)
        with tf.GradientTape() as tape:
            tape.watch(tensors[prediction_index])
            loss = function(*tensors)
        assert value(loss) == 0.0, function.__name__
        gradient = tape.gradient(loss, tensors[prediction_index])
        assert gradient is not None and not np.any(gradient.numpy()), \
            function.__name__


def test_gradients_are_finite_and_nonzero():
    rng = np.random.default_rng(7)
    for function, inputs, prediction_index in loss_cases(rng):
        tensors = as_tensors(inputs)
        with tf.GradientTape() as tape:
            tape.watch(tensors[prediction_index])
            loss = function(*tensors)
        gradient = tape.gradient(loss, tensors[prediction_index]).numpy()
        assert np.isfinite(value(loss)) and value(loss) > 0, function.__name__
        assert np.all(np.isfinite(gradient)), function.__name__
        assert np.any(gradient), function.__name__


def test_saturated_mask_predictions_keep_finite_loss():
    targets = np.array([[[[1.0, 0.0]]]], np.float32)
    predictions = np.array([[[[[0.0], [1.0]]]]], np.float32)  # all wrong
    predictions = tf.constant(predictions)
    with tf.GradientTape() as tape:
        tape.watch(predictions)
        loss = losses.mrcnn_mask_loss_graph(targets, np.array([[0]]) + 1,
                                            tf.concat([predictions] * 2, -1))
    assert np.isfinite(value(loss)) and value(loss) > 10
    assert np.all(np.isfinite(tape.gradient(loss, predictions).numpy()))


LAYERS = [
    (losses.RPNClassLoss, "rpn_class_loss"),
    (losses.RPNBboxLoss, "rpn_bbox_loss"),
    (losses.MRCNNClassLoss, "mrcnn_class_loss"),
    (losses.MRCNNBboxLoss, "mrcnn_bbox_loss"),
    (losses.MRCNNMaskLoss, "mrcnn_mask_loss"),
]


def test_loss_layers_inside_functional_model():
    rng = np.random.default_rng(8)
    cases = loss_cases(rng)
    model_inputs, model_outputs, arrays, expected = [], [], [], []
    for (layer_class, name), (function, inputs, _) in zip(LAYERS, cases):
        symbolic = [keras.Input(np.shape(x)[1:],
                                dtype="float32" if np.asarray(x).dtype.kind
                                == "f" else str(np.asarray(x).dtype))
                    for x in inputs]
        layer = layer_class()
        assert layer.name == name
        output = layer(symbolic)
        assert tuple(output.shape) == (1,)
        model_inputs += symbolic
        model_outputs.append(output)
        arrays += [np.asarray(x, np.float32) if np.asarray(x).dtype.kind
                   == "f" else np.asarray(x) for x in inputs]
        expected.append(value(function(*as_tensors(inputs))))
    model = keras.Model(model_inputs, model_outputs)
    results = model(arrays)
    for result, target, (_, name) in zip(results, expected, LAYERS):
        assert result.shape == (1,) and result.dtype == tf.float32
        assert float(result[0]) == pytest.approx(target, rel=1e-5), name


@pytest.mark.parametrize("layer_class, name", LAYERS)
def test_loss_layer_config_round_trip(layer_class, name):
    layer = layer_class(name=name + "_custom")
    clone = layer_class.from_config(layer.get_config())
    assert clone.name == name + "_custom"
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is layer_class


def test_half_precision_predictions_are_computed_in_float32():
    rng = np.random.default_rng(9)
    function, inputs, index = loss_cases(rng)[3]
    reference = value(function(*as_tensors(inputs)))
    inputs = list(inputs)
    inputs[index] = np.asarray(inputs[index], np.float16)
    result = losses.MRCNNBboxLoss()(inputs)
    assert result.dtype == tf.float32
    assert float(result[0]) == pytest.approx(reference, rel=1e-2)
