"""Frozen batch norm folded into the preceding convolution
(mrcnn.network.backbone.FoldableConv2D): same numbers as the unfolded pair, same
weights, the normalization really skipped."""
import numpy as np
import pytest
import tensorflow as tf

import keras

from mrcnn import model as modellib
from mrcnn.network.backbone import BatchNorm, FoldableConv2D, conv_bn
from samples.shapes.shapes import ShapesDataset
from tests.tiny import TinyConfig, never_background


def randomize_batch_norms(keras_model, seed):
    """Moving statistics and affine weights far from the identity, so that
    a wrong fold cannot pass for a right one."""
    rng = np.random.default_rng(seed)
    for layer in keras_model._flatten_layers(include_self=False):
        if isinstance(layer, BatchNorm):
            channels = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, channels),
                               rng.normal(0, 0.3, channels),
                               rng.normal(0, 0.3, channels),
                               rng.uniform(0.5, 2.0, channels)])


def pair_model(fold, train_bn, seed=3):
    """conv_bn on [2, 9, 9, 5] inputs, as a Keras model."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((9, 9, 5))
    outputs = conv_bn(inputs, 4, (3, 3), "conv", "bn", train_bn, fold,
                      padding="same")
    model = keras.Model(inputs, outputs)
    randomize_batch_norms(model, seed)
    return model


def loss_and_gradients(model, x, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x, training=training)
        loss = tf.reduce_sum(y * tf.sin(y))
    gradients = tape.gradient(loss, [x] + model.trainable_weights)
    return y.numpy(), [g.numpy() for g in gradients]


def test_folded_pair_equals_convolution_then_normalization_by_hand():
    model = pair_model(fold=True, train_bn=False)
    conv, bn = model.get_layer("conv"), model.get_layer("bn")
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 9, 9, 5)),
                    tf.float32)
    gamma, beta, mean, variance = bn.get_weights()
    z = tf.nn.conv2d(x, conv.kernel, 1, "SAME").numpy() + conv.bias.numpy()
    expected = (z - mean) / np.sqrt(variance + bn.epsilon) * gamma + beta
    np.testing.assert_allclose(model(x, training=True).numpy(), expected,
                               rtol=1e-5, atol=1e-5)
    assert bn.is_folded(True) and bn.is_folded(False)
    # The BatchNorm passes its input through: the conv did the work.
    np.testing.assert_array_equal(bn(x[..., :4], training=True), x[..., :4])


@pytest.mark.parametrize("train_bn, training", [
    (False, True), (False, False), (True, False), (None, False)])
def test_fold_keeps_outputs_and_gradients(train_bn, training):
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 9, 9, 5)),
                    tf.float32)
    folded = pair_model(True, train_bn)
    plain = pair_model(False, train_bn)
    assert folded.get_layer("bn").is_folded(training)
    assert not plain.get_layer("bn").is_folded(training)
    y, gradients = loss_and_gradients(folded, x, training)
    y_plain, gradients_plain = loss_and_gradients(plain, x, training)
    np.testing.assert_allclose(y, y_plain, rtol=1e-5, atol=1e-5)
    # input, kernel, bias, gamma, beta
    assert len(gradients) == 5
    for got, expected in zip(gradients, gradients_plain):
        np.testing.assert_allclose(got, expected, rtol=1e-4,
                                   atol=1e-5 * np.abs(expected).max())


def test_trained_batch_norm_in_training_is_not_folded():
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 9, 9, 5)),
                    tf.float32)
    model = pair_model(True, train_bn=True)
    bn = model.get_layer("bn")
    assert not bn.is_folded(True)
    y = model(x, training=True).numpy()
    # Batch statistics: every channel normalized to mean beta, std gamma.
    gamma, beta = bn.get_weights()[:2]
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), beta, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), np.abs(gamma),
                               rtol=1e-2)
    bn.trainable = False  # a frozen layer uses its moving statistics
    assert bn.is_folded(True)


def test_weights_and_config_are_those_of_plain_layers():
    folded, plain = pair_model(True, False), pair_model(False, False)
    for name in ("conv", "bn"):
        assert [w.name for w in folded.get_layer(name).weights] == \
            [w.name for w in plain.get_layer(name).weights]
    assert [w.shape for w in folded.get_weights()] == \
        [w.shape for w in plain.get_weights()]
    config = folded.get_layer("bn").get_config()
    assert config["fold"] is True and config["train_bn"] is False
    assert BatchNorm.from_config(config).fold is True
    assert isinstance(folded.get_layer("conv"), FoldableConv2D)


class FoldConfig(TinyConfig):
    NAME = "fold"
    TRAIN_BN = False
    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.0


def model_pair(mode, tmp_path, **settings):
    """The same random weights with FOLD_BATCH_NORM True and False."""
    models = []
    for fold in (True, False):
        config = type("C", (FoldConfig,),
                      dict(settings, FOLD_BATCH_NORM=fold))()
        keras.utils.set_random_seed(4)
        models.append(modellib.MaskRCNN(mode, config, str(tmp_path)))
    folded, plain = models
    randomize_batch_norms(folded.keras_model, 5)
    plain.keras_model.set_weights(folded.keras_model.get_weights())
    for model in (folded, plain):
        never_background(model.keras_model)
    return folded, plain


def test_folded_inference_model_gives_the_same_detections(tmp_path):
    folded, plain = model_pair("inference", tmp_path)
    dataset = ShapesDataset()
    dataset.load_shapes(2, 64, 64, seed=7, max_shapes=2)
    dataset.prepare()
    images = [dataset.load_image(i) for i in dataset.image_ids]
    for got, expected in zip(folded.detect(images), plain.detect(images)):
        assert len(expected["class_ids"]) > 0
        np.testing.assert_array_equal(got["class_ids"], expected["class_ids"])
        np.testing.assert_array_equal(got["rois"], expected["rois"])
        np.testing.assert_allclose(got["scores"], expected["scores"],
                                   atol=1e-4)
        assert np.mean(got["masks"] != expected["masks"]) < 1e-3


def test_folded_training_model_gives_the_same_losses(tmp_path):
    folded, plain = model_pair("training", tmp_path)
    dataset = ShapesDataset()
    dataset.load_shapes(2, 64, 64, seed=8, max_shapes=2)
    dataset.prepare()
    batch = modellib.MaskRCNNDataset(dataset, folded.config,
                                     shuffle=False)[0]
    losses = []
    for model in (folded, plain):
        tf.random.set_seed(9)  # the same ROI sampling for both
        outputs = model.keras_model(batch, training=True)
        losses.append([float(np.mean(o)) for o in outputs[-5:]])
    assert all(np.isfinite(losses[1]))
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fold", [True, False])
def test_whole_input_kernel_runs_as_a_matrix_product_with_conv_results(fold):
    """A 'valid' kernel the size of its input (the classifier's fc layer)
    goes through a matmul: same outputs and gradients as conv2d."""
    keras.utils.set_random_seed(6)
    inputs = keras.Input((7, 7, 6))
    outputs = conv_bn(inputs, 5, (7, 7), "fc", "fc_bn", False, fold)
    model = keras.Model(inputs, outputs)
    randomize_batch_norms(model, 6)
    conv, bn = model.get_layer("fc"), model.get_layer("fc_bn")
    x = tf.constant(np.random.default_rng(6).normal(size=(3, 7, 7, 6)),
                    tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x, training=False)
        loss = tf.reduce_sum(tf.sin(y))
    gradient = tape.gradient(loss, x).numpy()
    gamma, beta, mean, variance = [w.numpy() for w in bn.weights]
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = tf.nn.conv2d(x, conv.kernel, 1, "VALID") + conv.bias
        expected = (z - mean) / tf.sqrt(variance + bn.epsilon) * gamma + beta
        expected_loss = tf.reduce_sum(tf.sin(expected))
    assert y.shape == (3, 1, 1, 5)
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(gradient, tape.gradient(expected_loss, x),
                               rtol=1e-4, atol=1e-6)
