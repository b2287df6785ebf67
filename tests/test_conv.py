"""mrcnn.network.conv.Conv2D: the matrix-product formulations give Keras Conv2D's
outputs and gradients, and are chosen from the CPU as documented."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from mrcnn.network import conv
from tests.graph_ops import op_types


def _loss_and_gradients(layer, inputs):
    """A loss that weights every output differently, and its gradients
    with respect to the inputs and the kernel."""
    x = tf.constant(inputs)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = layer(x)
        loss = tf.reduce_sum(outputs * tf.sin(outputs))
    dx, dkernel, dbias = tape.gradient(
        loss, [x, layer.kernel.value, layer.bias.value])
    return outputs.numpy(), dx.numpy(), dkernel.numpy(), dbias.numpy()


@pytest.mark.parametrize("kernels", ["matmul", "native"])
@pytest.mark.parametrize("kernel_size, strides, padding, spatial, channels", [
    # From 128 channels on a 32x32 map, the matrix-product filter gradient.
    (3, 1, "same", (32, 32), 128),
    (3, 1, "valid", (34, 33), 128),
    (3, 1, "same", (9, 7), 5),
    (3, 1, "valid", (9, 7), 5),
    (5, 1, "same", (6, 6), 5),
    (1, 1, "valid", (9, 7), 5),
    (1, 2, "same", (9, 7), 5),  # odd size: the last row and column are used
    (3, 2, "same", (8, 8), 5),   # strided k x k: TensorFlow's own kernels
    (7, 1, "valid", (7, 7), 5),  # covers its whole input: one matmul
])
def test_same_outputs_and_gradients_as_keras_conv2d(
        monkeypatch, kernels, kernel_size, strides, padding, spatial,
        channels):
    monkeypatch.setenv(conv.KERNELS_ENV, kernels)
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(2,) + spatial + (channels,)).astype("float32")
    reference = keras.layers.Conv2D(6, kernel_size, strides=strides,
                                    padding=padding)
    ours = conv.Conv2D(6, kernel_size, strides=strides, padding=padding)
    reference.build(inputs.shape)
    ours.build(inputs.shape)
    ours.set_weights([rng.normal(size=w.shape).astype("float32")
                      for w in reference.get_weights()])
    reference.set_weights(ours.get_weights())

    expected = _loss_and_gradients(reference, inputs)
    got = _loss_and_gradients(ours, inputs)
    for name, want, have in zip(("outputs", "dx", "dkernel", "dbias"),
                                expected, got):
        assert have.shape == want.shape, name
        # float32 sums over thousands of terms: rounding against the
        # array's scale.
        scale = float(np.abs(want).max())
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=name)


def test_filter_gradient_is_the_sum_over_windows():
    # The matrix-product filter gradient itself (the layer uses it on large
    # maps only).
    """Hand-worked: a 2x2 input, a 1-channel 3x3 SAME conv, output
    gradient of ones: each kernel tap's gradient is the sum of the inputs
    it met (zero padding elsewhere)."""
    x = tf.constant([[[[1.0], [2.0]], [[3.0], [4.0]]]])  # [1, 2, 2, 1]
    kernel = tf.zeros([3, 3, 1, 1])
    with tf.GradientTape() as tape:
        tape.watch(kernel)
        y = tf.nn.conv2d(x, kernel, 1, "SAME")
        loss = tf.reduce_sum(y)
    dy = tape.gradient(loss, y)
    grad = conv._filter_gradient(x, dy, 3, 3, "SAME").numpy()[:, :, 0, 0]
    # Tap (row, col) multiplies x[h + row - 1, w + col - 1] for every
    # output (h, w): the centre sees all four inputs, a corner only one.
    expected = np.array([[1.0, 3.0, 2.0],
                         [4.0, 10.0, 6.0],
                         [3.0, 7.0, 4.0]])
    np.testing.assert_allclose(grad, expected)


@pytest.mark.parametrize("flags, cap, onednn, expected", [
    ({"avx2", "fma"}, "", None, False),  # TensorFlow's default: Eigen
    ({"avx2", "fma"}, "", "1", True),    # oneDNN asked for: AVX2 code
    ({"avx2", "fma", "avx512f"}, "", None, False),
    ({"avx2", "fma", "avx512f"}, "AVX2", None, True),
    ({"avx2", "fma", "avx512f"}, "AVX2", "0", False),
    ({"avx2", "fma", "avx512f"}, "avx512_core", None, False),
])
def test_auto_choice_follows_the_kernels_tensorflow_runs(
        monkeypatch, flags, cap, onednn, expected):
    monkeypatch.delenv(conv.KERNELS_ENV, raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    if onednn is None:
        monkeypatch.delenv(conv.ONEDNN_ENV, raising=False)
    else:
        monkeypatch.setenv(conv.ONEDNN_ENV, onednn)
    assert conv.matmul_kernels(flags) is expected


def test_environment_forces_the_choice_and_rejects_typos(monkeypatch):
    monkeypatch.setenv(conv.KERNELS_ENV, "native")
    assert conv.matmul_kernels({"avx2"}) is False
    monkeypatch.setenv(conv.KERNELS_ENV, "MatMul")
    assert conv.matmul_kernels({"avx2", "avx512f"}) is True
    monkeypatch.setenv(conv.KERNELS_ENV, "fast")
    with pytest.raises(ValueError, match=conv.KERNELS_ENV):
        conv.matmul_kernels()


def test_serializes_as_a_conv2d():
    layer = conv.Conv2D(4, (3, 3), padding="same", name="fpn_p2")
    clone = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(clone) is conv.Conv2D
    assert clone.get_config() == layer.get_config()


def test_matmul_kernels_replace_the_convolution_ops(monkeypatch):
    monkeypatch.setenv(conv.KERNELS_ENV, "matmul")
    pointwise = op_types(conv.Conv2D(4, 1), (2, 8, 8, 3))
    assert "Conv2D" not in pointwise and "MatMul" in pointwise
    large = op_types(conv.Conv2D(4, 3, padding="same"), (2, 32, 32, 128))
    assert "Conv2D" in large and "Conv2DBackpropFilter" not in large
    assert "MatMul" in large
    # Few channels, or small maps: the convolution's own filter gradient.
    for shape in [(2, 32, 32, 64), (2, 16, 16, 128)]:
        small = op_types(conv.Conv2D(4, 3, padding="same"), shape)
        assert "Conv2DBackpropFilter" in small and "MatMul" not in small
    # Map size unknown when traced: both, chosen at run time.
    dynamic = op_types(conv.Conv2D(4, 3, padding="same"),
                        (2, None, None, 128))
    assert {"Conv2DBackpropFilter", "MatMul"} <= dynamic
    monkeypatch.setenv(conv.KERNELS_ENV, "native")
    native = op_types(conv.Conv2D(4, 3, padding="same"), (2, 32, 32, 128))
    assert "Conv2DBackpropFilter" in native and "MatMul" not in native


@pytest.mark.parametrize("spatial", [(32, 32), (16, 8)])
def test_filter_gradient_chosen_at_run_time_is_right(spatial):
    """Map size unknown when traced (as for the FPN on input_image
    [None, None, 3]): the gradient of either branch equals autodiff's."""
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(2,) + spatial + (128,)), tf.float32)
    kernel = tf.constant(rng.normal(size=(3, 3, 128, 3)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([2, None, None, 128])])
    def gradients(x):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(kernel)
            ours = tf.reduce_sum(tf.sin(conv.conv2d_matmul_filter_gradient(
                x, kernel, "same")))
            reference = tf.reduce_sum(tf.sin(tf.nn.conv2d(
                x, kernel, 1, "SAME")))
        return tape.gradient(ours, kernel), tape.gradient(reference, kernel)

    got, want = gradients(x)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4,
                               atol=1e-2)


@pytest.mark.parametrize("kernel_size, padding, height", [
    (3, "SAME", 9), (3, "SAME", 8), (5, "SAME", 7), (3, "VALID", 10),
    (3, "VALID", 9), (3, "SAME", 1), (3, "VALID", 4)])
def test_banded_convolution_equals_one_convolution(kernel_size, padding,
                                                   height):
    """A single image as two bands of rows (odd and even output heights,
    a one-row output, both paddings) gives tf.nn.conv2d's output, with the
    size known when traced and not."""
    rng = np.random.default_rng(7)
    x = tf.constant(rng.normal(size=(1, height, 6, 4)), tf.float32)
    kernel = tf.constant(
        rng.normal(size=(kernel_size, kernel_size, 4, 3)), tf.float32)
    want = tf.nn.conv2d(x, kernel, 1, padding).numpy()
    static = conv._banded(x, kernel, padding).numpy()
    dynamic = tf.function(
        lambda x: conv._forward(x, kernel, padding),
        input_signature=[tf.TensorSpec([None, None, None, 4])])(x).numpy()
    for got in (static, dynamic):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_single_image_layer_matches_keras_with_gradients(monkeypatch):
    """The layer on one image, as detect() runs it, forward and backward:
    Keras Conv2D's outputs and gradients."""
    monkeypatch.setenv(conv.KERNELS_ENV, "matmul")
    rng = np.random.default_rng(11)
    inputs = rng.normal(size=(1, 33, 32, 128)).astype("float32")
    reference = keras.layers.Conv2D(5, 3, padding="same")
    ours = conv.Conv2D(5, 3, padding="same")
    reference.build(inputs.shape)
    ours.build(inputs.shape)
    ours.set_weights(reference.get_weights())
    for name, want, have in zip(("outputs", "dx", "dkernel", "dbias"),
                                _loss_and_gradients(reference, inputs),
                                _loss_and_gradients(ours, inputs)):
        scale = float(np.abs(want).max())
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-5 * scale,
                                   err_msg=name)


def test_batch_size_unknown_when_traced_chooses_bands_at_run_time(
        monkeypatch):
    """Batch size None (the model's inputs): one image takes the banded
    branch, two images the plain convolution; both traced once."""
    monkeypatch.setenv(conv.KERNELS_ENV, "matmul")
    layer = conv.Conv2D(3, 3, padding="same")
    types = op_types(layer, (None, None, None, 4))
    assert "ConcatV2" in types and types & {"If", "StatelessIf"}
    x = tf.constant(np.random.default_rng(2).normal(size=(2, 7, 5, 4)),
                    tf.float32)
    reference = tf.nn.conv2d(x, layer.kernel, 1, "SAME") + layer.bias
    for batch in (x[:1], x):
        got = tf.function(layer, input_signature=[
            tf.TensorSpec([None, None, None, 4])])(batch)
        np.testing.assert_allclose(got.numpy(),
                                   reference.numpy()[:len(batch)],
                                   rtol=1e-5, atol=1e-5)
