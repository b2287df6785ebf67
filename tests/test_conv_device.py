"""mrcnn.network.conv.Conv2D's CPU kernels follow the device the op runs
on, not the machine that traced it: placed on a GPU (or compiled by XLA),
the traced graph, and a SavedModel saved from it on this CPU, run Keras'
own convolution; on a CPU the kernels chosen for it; `native` means plain
convolutions everywhere, with no dispatch at all."""

import numpy as np
import pytest
import tensorflow as tf

from mrcnn.network import conv, winograd
from tests.graph_ops import device_branches, graph_op_types, op_types

CPU_ONLY_OPS = {"BatchMatMulV2", "MatMul"}  # Winograd's and matmul's
CONV_OPS = {"Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput"}


def traced_graph_def(layer, shape):
    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, layer.kernel.value)
    return step.get_concrete_function(
        tf.TensorSpec(shape, tf.float32)).graph.as_graph_def()


@pytest.mark.parametrize("kernels, filters, kernel_size, shape, cpu_op", [
    # Winograd's batched products; the matmul filter gradient; a 1x1 conv
    # as a product; one image cut in two bands stacked as a batch.
    ("winograd", 128, 3, (1, 16, 16, 128), "BatchMatMulV2"),
    ("matmul", 128, 3, (2, 32, 32, 128), "MatMul"),
    ("matmul", 4, 1, (2, 8, 8, 3), "MatMul"),
    ("matmul", 4, 3, (1, 8, 8, 3), "ConcatV2"),
])
def test_gpu_placement_runs_the_keras_convolution(monkeypatch, kernels,
                                                  filters, kernel_size,
                                                  shape, cpu_op):
    monkeypatch.setenv(conv.KERNELS_ENV, kernels)
    layer = conv.Conv2D(filters, kernel_size, padding="same")
    gpu = op_types(layer, shape, device="GPU")
    cpu = op_types(layer, shape, device="CPU")
    # Forward, input and filter gradients: cuDNN's three convolutions.
    assert CONV_OPS <= gpu and not gpu & (CPU_ONLY_OPS | {cpu_op}), gpu
    assert cpu_op in cpu, cpu
    # One dispatch forward, one for the gradient; CPU first, then default.
    dispatches = device_branches(traced_graph_def(layer, shape))
    assert dispatches and all(names == ["CPU"] and len(branches) == 2
                              for names, branches in dispatches)


@pytest.mark.parametrize("filters, shape", [
    (128, (1, 16, 16, 128)), (4, (1, 8, 8, 3))])
def test_native_traces_plain_convolutions_without_a_dispatch(
        monkeypatch, filters, shape):
    monkeypatch.setenv(conv.KERNELS_ENV, "native")
    layer = conv.Conv2D(filters, 3, padding="same")
    graph_def = traced_graph_def(layer, shape)
    assert device_branches(graph_def) == []
    types = graph_op_types(graph_def, "CPU")
    assert "DeviceIndex" not in types and CONV_OPS <= types
    assert not types & CPU_ONLY_OPS


def test_plain_cpu_choice_needs_no_dispatch(monkeypatch):
    """Where the CPU runs Keras' convolution too (few channels, no oneDNN
    AVX2 code), the graph is the same on every device."""
    monkeypatch.setenv(conv.KERNELS_ENV, "auto")
    monkeypatch.setattr(conv, "matmul_kernels", lambda flags=None: False)
    layer = conv.Conv2D(8, 3, padding="same")
    assert device_branches(traced_graph_def(layer, (1, 8, 8, 3))) == []


def _layer_and_input(seed=3):
    rng = np.random.default_rng(seed)
    layer = conv.Conv2D(128, 3, padding="same", use_bias=False)
    x = tf.constant(rng.normal(size=(1, 12, 12, 128)), tf.float32)
    layer.build(x.shape)
    return layer, x


def test_on_a_cpu_the_cpu_branch_runs(monkeypatch):
    """The dispatch picks by the device when it runs: on this CPU the
    output is Winograd's to the bit (which rounds differently from the
    direct convolution), eagerly and traced."""
    monkeypatch.setenv(conv.KERNELS_ENV, "winograd")
    layer, x = _layer_and_input()
    kernel = layer.kernel.value
    with tf.device("/CPU:0"):
        expected = winograd.conv3x3_same(x, kernel).numpy()
        direct = tf.nn.conv2d(x, kernel, 1, "SAME").numpy()
        assert not np.array_equal(expected, direct)  # told apart
        np.testing.assert_array_equal(layer(x).numpy(), expected)
        np.testing.assert_array_equal(tf.function(layer)(x).numpy(),
                                      expected)


def test_xla_compiles_the_plain_convolution(monkeypatch):
    """XLA takes the default branch: the jit-compiled layer gives the
    direct convolution's result, not Winograd's."""
    monkeypatch.setenv(conv.KERNELS_ENV, "winograd")
    layer, x = _layer_and_input()
    kernel = layer.kernel.value
    compiled = tf.function(layer, jit_compile=True)(x).numpy()
    direct = tf.nn.conv2d(x, kernel, 1, "SAME").numpy()
    np.testing.assert_allclose(compiled, direct, rtol=1e-5, atol=1e-4)
    graph_def = tf.function(layer, jit_compile=True).get_concrete_function(
        tf.TensorSpec(x.shape, tf.float32)).graph.as_graph_def()
    assert device_branches(graph_def) == []


def test_saved_model_exported_on_cpu_keeps_both(monkeypatch, tmp_path):
    """A SavedModel saved on this CPU: placed on a GPU its graph runs the
    plain convolution; on the CPU, loaded back, Winograd's to the bit."""
    monkeypatch.setenv(conv.KERNELS_ENV, "winograd")
    layer, x = _layer_and_input()
    with tf.device("/CPU:0"):
        expected = winograd.conv3x3_same(x, layer.kernel.value).numpy()
    module = tf.Module()
    module.layer = layer
    module.serve = tf.function(
        lambda images: layer(images),
        input_signature=[tf.TensorSpec([None, 12, 12, 128], tf.float32)])
    tf.saved_model.save(module, str(tmp_path))
    monkeypatch.setenv(conv.KERNELS_ENV, "native")  # not re-traced on load
    loaded = tf.saved_model.load(str(tmp_path))
    serve = loaded.signatures["serving_default"]
    graph_def = serve.graph.as_graph_def()
    assert device_branches(graph_def)
    gpu = graph_op_types(graph_def, "GPU")
    assert "Conv2D" in gpu and not gpu & CPU_ONLY_OPS, gpu
    assert "BatchMatMulV2" in graph_op_types(graph_def, "CPU")
    with tf.device("/CPU:0"):
        (output,) = serve(images=x).values()
    np.testing.assert_array_equal(output.numpy(), expected)
    if tf.config.list_logical_devices("GPU"):  # benchmarks/gpu_check.sh
        with tf.device("/GPU:0"):
            (on_gpu,) = serve(images=x).values()
            direct = tf.nn.conv2d(x, layer.kernel.value, 1, "SAME")
        np.testing.assert_allclose(on_gpu.numpy(), direct.numpy(),
                                   rtol=1e-5, atol=1e-4)
        assert not np.array_equal(on_gpu.numpy(), expected)
