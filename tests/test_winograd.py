"""mrcnn.network.winograd: F(4x4, 3x3) gives the direct convolution's outputs and
gradients, its transforms are what they claim, and mrcnn.network.conv takes it
where documented."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.network import conv
from mrcnn.network import winograd
from tests.graph_ops import op_types


def _direct_correlation_1d(d, g):
    """The 4 outputs of a valid 3-tap correlation over 6 inputs."""
    return np.array([sum(d[i + k] * g[k] for k in range(3))
                     for i in range(4)])


def test_one_dimensional_identity_by_brute_force():
    """A^T [(G g) * (B^T d)] is the 3-tap correlation of a 6-long row, for
    random rows and taps (float64: the identity is exact)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        d, g = rng.normal(size=6), rng.normal(size=3)
        product = (winograd.FILTER_TRANSFORM @ g) * (
            winograd.INPUT_TRANSFORM @ d)
        np.testing.assert_allclose(winograd.OUTPUT_TRANSFORM @ product,
                                   _direct_correlation_1d(d, g),
                                   rtol=1e-12, atol=1e-12)


def _loss_and_gradients(function, x, w):
    """A loss weighting every output differently, and d loss / d (x, w)."""
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = function(x, w)
        loss = tf.reduce_sum(y * tf.sin(y))
    dx, dw = tape.gradient(loss, [x, w])
    return y.numpy(), dx.numpy(), dw.numpy()


def _assert_close_to_scale(have, want, name, relative=2e-5):
    """float32 rounding against the array's scale: Winograd's transforms
    (constants up to 8 and 1/24) cost a few bits more than direct sums."""
    assert have.shape == want.shape, name
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(have, want, rtol=0, atol=relative * scale,
                               err_msg=name)


@pytest.mark.parametrize("shape, out_channels", [
    ((2, 16, 16, 8), 8),    # whole 4x4 blocks
    ((1, 9, 7, 5), 3),      # odd sizes: partial blocks at the bottom, right
    ((3, 1, 1, 4), 2),      # a single pixel: the padding only
    ((2, 6, 13, 6), 7),
])
def test_outputs_and_gradients_equal_the_direct_convolution(shape,
                                                            out_channels):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=shape), tf.float32)
    w = tf.constant(rng.normal(size=(3, 3, shape[3], out_channels)),
                    tf.float32)
    want = _loss_and_gradients(
        lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"), x, w)
    have = _loss_and_gradients(winograd.conv3x3_same, x, w)
    for name, a, b in zip(("outputs", "dx", "dw"), have, want):
        _assert_close_to_scale(a, b, name)


def test_unknown_shape_when_traced():
    """Batch and map size unknown when traced (as in the model): the same
    outputs and gradients for two input sizes through one trace."""
    rng = np.random.default_rng(2)
    w = tf.constant(rng.normal(size=(3, 3, 4, 5)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 4])])
    def both(x):
        ours = _symbolic_loss_and_gradients(winograd.conv3x3_same, x, w)
        direct = _symbolic_loss_and_gradients(
            lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"), x, w)
        return ours, direct

    for shape in [(2, 11, 8, 4), (1, 4, 21, 4)]:
        x = tf.constant(rng.normal(size=shape), tf.float32)
        ours, direct = both(x)
        for name, a, b in zip(("outputs", "dx", "dw"), ours, direct):
            _assert_close_to_scale(a.numpy(), b.numpy(), name)
    assert both.experimental_get_tracing_count() == 1


def _symbolic_loss_and_gradients(function, x, w):
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = function(x, w)
        loss = tf.reduce_sum(y * tf.sin(y))
    return [y] + tape.gradient(loss, [x, w])


def _dot(a, b):
    return float(tf.reduce_sum(tf.cast(a, tf.float64) * tf.cast(b, tf.float64)))


def test_the_backward_transforms_are_the_adjoints():
    """<T a, b> = <a, T* b> for the filter and output transforms and their
    backward counterparts (the gradient relies on it)."""
    rng = np.random.default_rng(3)
    w = tf.constant(rng.normal(size=(3, 3, 4, 5)), tf.float32)
    du = tf.constant(rng.normal(size=(36, 4, 5)), tf.float32)
    assert _dot(winograd._filter_to_winograd(w), du) == pytest.approx(
        _dot(w, winograd._filter_from_winograd(du)), rel=1e-5)

    x_shape = tf.constant([2, 7, 9, 5])
    tiles = winograd._tile_grid(x_shape)       # 2 x 2 x 3 tiles
    m = tf.constant(rng.normal(size=(36, 2 * 2 * 3, 5)), tf.float32)
    dy = tf.constant(rng.normal(size=(2, 7, 9, 5)), tf.float32)
    assert _dot(winograd._output_from_winograd(m, tiles, x_shape),
                dy) == pytest.approx(
        _dot(m, winograd._output_to_winograd(dy, tiles)), rel=1e-5)


def test_input_transform_takes_the_six_by_six_tiles():
    """V for one tile is B^T d B of the 6x6 window starting one pixel
    above and left of the tile's 4x4 outputs (zero padding outside)."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1, 8, 8, 1))
    v, _ = winograd._input_to_winograd(tf.constant(x, tf.float64))
    padded = np.pad(x[0, :, :, 0], ((1, 3), (1, 3)))
    b_t = winograd.INPUT_TRANSFORM
    # Tile (1, 0): outputs rows 4-7, columns 0-3.
    window = padded[4:10, 0:6]
    want = b_t @ window @ b_t.T                # [i (row), j (column)]
    got = v.numpy()[:, 2, 0].reshape(6, 6)     # stored as [j, i]
    np.testing.assert_allclose(got.T, want, rtol=1e-12, atol=1e-12)


############################################################
#  Where mrcnn.network.conv takes it
############################################################

@pytest.mark.parametrize("flags, cap, kernels, dtype, expected", [
    ({"avx2", "fma"}, "", "auto", "float32",
     (conv.WINOGRAD_MIN_IMAGE_PIXELS, True)),          # Eigen
    ({"avx2", "fma", "avx512f"}, "AVX2", "auto", "float32",
     (conv.WINOGRAD_MIN_PIXELS_AVX2, False)),          # oneDNN's AVX2 code
    ({"avx2", "fma", "avx512f"}, "", "auto", "float32",
     (conv.WINOGRAD_MIN_IMAGE_PIXELS, True)),          # its AVX-512 code
    ({"avx2", "fma", "avx512f"}, "", "auto", "bfloat16", None),
    ({"avx2", "fma"}, "", "winograd", "float32", (0, False)),
    ({"avx2", "fma"}, "", "matmul", "float32", None),
    ({"avx2", "fma"}, "", "native", "float32", None),
])
def test_threshold_follows_the_kernels_and_the_environment(
        monkeypatch, flags, cap, kernels, dtype, expected):
    monkeypatch.setenv(conv.KERNELS_ENV, kernels)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    monkeypatch.delenv(conv.ONEDNN_ENV, raising=False)
    assert conv.winograd_threshold(dtype, flags) == expected


def test_layer_takes_winograd_on_large_maps_only(monkeypatch):
    """No oneDNN cap (per-image rule): a 64x64 map with 128 channels in
    and out takes Winograd (batched products, no convolution op), a
    32x32 one or fewer channels the convolution; an unknown size both,
    chosen at run time."""
    monkeypatch.setenv(conv.KERNELS_ENV, "auto")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "")
    monkeypatch.setattr(conv, "matmul_kernels", lambda flags=None: False)
    large = op_types(conv.Conv2D(128, 3, padding="same"), (1, 64, 64, 128))
    assert "BatchMatMulV2" in large and "Conv2D" not in large
    for filters, shape in [(128, (1, 32, 32, 128)), (64, (1, 64, 64, 128))]:
        small = op_types(conv.Conv2D(filters, 3, padding="same"), shape)
        assert "Conv2D" in small and "BatchMatMulV2" not in small
    dynamic = op_types(conv.Conv2D(128, 3, padding="same"),
                        (1, None, None, 128))
    assert {"Conv2D", "BatchMatMulV2"} <= dynamic


def test_layer_with_winograd_matches_keras_conv2d(monkeypatch):
    """conv.Conv2D forced to Winograd, its bias included, against Keras'
    Conv2D with the same weights: outputs and gradients."""
    import keras

    monkeypatch.setenv(conv.KERNELS_ENV, "winograd")
    rng = np.random.default_rng(5)
    inputs = tf.constant(rng.normal(size=(2, 10, 9, 128)), tf.float32)
    reference = keras.layers.Conv2D(128, 3, padding="same")
    ours = conv.Conv2D(128, 3, padding="same")
    reference.build(inputs.shape)
    ours.build(inputs.shape)
    ours.set_weights(reference.get_weights())
    assert "BatchMatMulV2" in op_types(ours, inputs.shape)

    def run(layer):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            y = layer(inputs)
            loss = tf.reduce_sum(y * tf.sin(y))
        grads = tape.gradient(loss, [inputs, layer.kernel.value,
                                     layer.bias.value])
        return [y.numpy()] + [g.numpy() for g in grads]

    for name, a, b in zip(("outputs", "dx", "dkernel", "dbias"),
                          run(ours), run(reference)):
        _assert_close_to_scale(a, b, name)
