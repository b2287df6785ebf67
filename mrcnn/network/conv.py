"""Convolutions whose kernels are chosen for the CPU they run on.

``Conv2D`` is Keras' Conv2D with the same weights, names and results; only
the ops it runs differ, where that pays:

* A kernel that covers its whole input (a "valid" 7x7 conv on 7x7 ROI
  features: the classifier's fully connected layer) runs as one matrix
  product on every CPU: oneDNN's AVX2 code runs it through im2col at a
  seventh of the matrix product's speed, and even with AVX-512 the product
  is a third faster.
* Where oneDNN runs AVX2 code (an AVX2 CPU with ``TF_ENABLE_ONEDNN_OPTS=1``,
  which TensorFlow leaves off there, or an AVX-512 CPU with
  ``ONEDNN_MAX_CPU_ISA`` capped at AVX2), measured on a 2-core AVX2 host:

  - the filter gradient of a stride-1 k x k convolution on large maps
    (at least MATMUL_GRADIENT_MIN_CHANNELS input channels and
    MATMUL_GRADIENT_MIN_PIXELS output pixels a map: the FPN and RPN convs,
    not the ROI heads') is computed as k*k matrix products, shifted
    input^T @ output gradient, each with the whole batch and map as its
    inner dimension: 424 ms for a 3x3 256-channel conv on two 128x128
    maps, against 1,359 ms for oneDNN's AVX2 backward-weights kernel
    (which parallelizes over the few images) and 460 ms for Eigen's. On
    many small maps (400 ROIs of 14x14) that kernel is the faster one
    (868 ms against 1,355). The forward pass and the input gradient keep
    the convolution kernels, which are at the matrix product's speed;
  - a 1x1 convolution is a matrix product over the channels: the RPN's and
    the mask head's few output channels (6, 4) otherwise hit oneDNN's
    blocked 1x1 kernels at a fraction of their speed;
  - a stride-1 k x k convolution of a single image (detect() on one image
    a batch) runs on the image cut into two bands of rows, stacked as a
    batch of two: given one image, oneDNN's AVX2 code runs im2col and a
    matrix product (``x64:gemm:jit``) at a quarter of the speed of the
    direct kernel it picks from two images on (``brg_conv_fwd``). The
    FPN's P2 conv at 1024 px: 1,905 ms -> 454 ms.

* A stride-1 3x3 "same" convolution with at least WINOGRAD_MIN_CHANNELS
  input and output channels runs by Winograd's F(4x4, 3x3)
  (``mrcnn.network.winograd``: a quarter of the multiply-adds, forward and both
  gradients) on a CPU in float32, on large enough maps: where oneDNN runs
  AVX2 code from WINOGRAD_MIN_PIXELS_AVX2 output pixels in the batch
  (FPN, RPN, backbone and mask-head convs; a training step's P2 conv,
  forward and backward, 875 -> 422 ms), elsewhere from
  WINOGRAD_MIN_IMAGE_PIXELS a map (oneDNN's AVX-512 kernels are as fast
  on smaller ones; the P2 conv 379 -> 266 ms).

All of this is for a CPU only, and decided where the op runs, not where
the graph is traced: a convolution that takes one of these kernels is
traced twice, as the CPU's choice and as Keras' own convolution, behind
a switch on TensorFlow's ``DeviceIndex`` op (the index of the type of the
device the op is placed on, read when the graph runs). A graph traced, or a
SavedModel exported, on a CPU thus runs cuDNN's convolutions when placed
on a GPU, and XLA (which takes the default branch) compiles the plain
convolution. A convolution whose CPU choice is the plain one anyway is
traced once, without a dispatch. Nothing here lists the devices.

``$MRCNN_CONV_KERNELS`` = ``matmul`` (no Winograd) forces the CPU's
choice, ``winograd`` takes Winograd on a CPU for every 3x3 convolution it
applies to, whatever the map size ("auto", the default, decides from the
CPU flags, ``TF_ENABLE_ONEDNN_OPTS``, the oneDNN cap and the map size);
``native`` traces Keras' own convolutions everywhere, with no dispatch
(what converters to other runtimes, which choose their own kernels, need).
Graphs already traced keep the choice they were traced with.
"""

import os

import keras
import numpy as np
from keras import ops

from mrcnn.network import winograd
from mrcnn.runtime import ONEDNN_ENV, ONEDNN_ISA_ENV, cpu_flags

KERNELS_ENV = "MRCNN_CONV_KERNELS"
KERNEL_CHOICES = ("auto", "matmul", "native", "winograd")
# oneDNN ISA caps ($ONEDNN_MAX_CPU_ISA) that leave it AVX2 code or older.
AVX2_CLASS_CAPS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2")
# Where the matrix-product filter gradient pays (2-core AVX2 host, 3x3
# convs): from 128 channels on maps of 32x32 or more.
MATMUL_GRADIENT_MIN_CHANNELS = 128
MATMUL_GRADIENT_MIN_PIXELS = 32 * 32
# Where Winograd pays (2-core CPU, float32, forward and backward measured
# against oneDNN's kernels): from 128 channels in and out; under oneDNN's
# AVX2 code from 2,048 output pixels in the batch (two 32x32 maps, or
# ROIs of 14x14: a handful of 4x4 tiles is too few for its products),
# under its AVX-512 code from 64x64 maps (equal at 32x32, slower on 14x14
# ROIs).
WINOGRAD_MIN_CHANNELS = 128
WINOGRAD_MIN_PIXELS_AVX2 = 2048
WINOGRAD_MIN_IMAGE_PIXELS = 64 * 64


def kernel_choice():
    """$MRCNN_CONV_KERNELS, checked: one of KERNEL_CHOICES."""
    choice = os.environ.get(KERNELS_ENV, "auto").strip().lower() or "auto"
    if choice not in KERNEL_CHOICES:
        raise ValueError("{} must be one of {}, got {!r}".format(
            KERNELS_ENV, KERNEL_CHOICES, choice))
    return choice


def winograd_threshold(dtype, flags=None):
    """When a 3x3 convolution Winograd applies to takes it on a CPU, as
    (pixels, per_image): from `pixels` output pixels a map (per_image) or
    in the whole batch; None where it never does (a 16-bit compute dtype,
    $MRCNN_CONV_KERNELS matmul or native)."""
    choice = kernel_choice()
    if (choice in ("matmul", "native")
            or keras.backend.standardize_dtype(dtype) != "float32"):
        return None
    if choice == "winograd":
        return 0, False
    if matmul_kernels(flags):
        return WINOGRAD_MIN_PIXELS_AVX2, False
    return WINOGRAD_MIN_IMAGE_PIXELS, True


def matmul_kernels(flags=None):
    """Whether the matrix-product formulations above pay on this
    machine's CPU: TensorFlow's convolutions are oneDNN's AVX2 code (an
    AVX2 CPU with $TF_ENABLE_ONEDNN_OPTS=1, or an AVX-512 CPU under an
    AVX2-class $ONEDNN_MAX_CPU_ISA). `flags` (a set of CPU flags)
    replaces the probe."""
    choice = kernel_choice()
    if choice in ("matmul", "native"):
        return choice == "matmul"
    flags = cpu_flags() if flags is None else flags
    onednn = os.environ.get(ONEDNN_ENV, "").strip().lower()
    if "avx512f" not in flags:
        # TensorFlow runs Eigen's kernels here unless told otherwise, and
        # Eigen's filter gradient is faster than these matmuls (460 ms
        # against 570 for the P2 conv above).
        return onednn in ("1", "true")
    cap = os.environ.get(ONEDNN_ISA_ENV, "").strip().upper()
    return cap in AVX2_CLASS_CAPS and onednn not in ("0", "false")


def conv2d_matmul_filter_gradient(inputs, kernel, padding):
    """tf.nn.conv2d(inputs, kernel, 1, padding) whose kernel gradient is
    k*k matrix products where that pays, and whose forward pass cuts a
    single image into two bands of rows (see the module docstring); the
    input gradient is TensorFlow's own.

    inputs: [batch, H, W, C_in]; kernel: [kh, kw, C_in, C_out] (odd kh, kw
    for "SAME"). Returns [batch, H', W', C_out].
    """
    import tensorflow as tf

    padding = padding.upper()

    @tf.custom_gradient
    def convolution(x, w):
        def gradient(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=w, out_backprop=dy,
                strides=[1, 1, 1, 1], padding=padding)
            return dx, _kernel_gradient(x, w, dy, padding)
        return _forward(x, w, padding), gradient

    # A tensor, not the variable: read outside, the read is differentiated
    # by TensorFlow and the custom gradient sees no variables.
    return convolution(tf.convert_to_tensor(inputs),
                       tf.convert_to_tensor(kernel))


def _forward(x, w, padding):
    """tf.nn.conv2d(x, w, 1, padding); a batch of one image as two bands
    of rows (_banded), decided when traced if the batch size is known
    then, else each call."""
    import tensorflow as tf

    batch = x.shape[0]
    if batch is not None:
        if batch == 1:
            return _banded(x, w, padding)
        return tf.nn.conv2d(x, w, 1, padding)
    return tf.cond(tf.equal(tf.shape(x)[0], 1),
                   lambda: _banded(x, w, padding),
                   lambda: tf.nn.conv2d(x, w, 1, padding))


def _banded(x, w, padding):
    """tf.nn.conv2d(x, w, 1, padding) for x [1, H, W, C_in]: the output's
    rows in two bands of ceil(H' / 2), each computed from its input rows
    (k - 1 rows shared with the other band) as one batch of two "valid"
    convolutions; [1, H', W', C_out]."""
    import tensorflow as tf

    kh, kw = int(w.shape[0]), int(w.shape[1])
    if padding == "SAME":
        x = tf.pad(x, [[0, 0], [kh // 2, (kh - 1) // 2],
                       [kw // 2, (kw - 1) // 2], [0, 0]])
    out_height = tf.shape(x)[1] - kh + 1
    band = (out_height + 1) // 2
    # An odd H' needs one more input row at the bottom for the second band.
    x = tf.pad(x, [[0, 0], [0, 2 * band - out_height], [0, 0], [0, 0]])
    bands = tf.concat([x[:, :band + kh - 1], x[:, band:]], axis=0)
    y = tf.nn.conv2d(bands, w, 1, "VALID")
    y = tf.reshape(y, [1, 2 * band, tf.shape(y)[2], w.shape[-1]])
    return y[:, :out_height]


def _kernel_gradient(x, w, dy, padding):
    """_filter_gradient where it pays (MATMUL_GRADIENT_MIN_*), else
    TensorFlow's own; decided when traced if the map size is known then,
    else each step."""
    import tensorflow as tf

    kh, kw = int(w.shape[0]), int(w.shape[1])
    if int(w.shape[2]) < MATMUL_GRADIENT_MIN_CHANNELS:
        return _native_filter_gradient(x, w, dy, padding)
    height, width = dy.shape[1], dy.shape[2]
    if height is not None and width is not None:
        if height * width >= MATMUL_GRADIENT_MIN_PIXELS:
            return _filter_gradient(x, dy, kh, kw, padding)
        return _native_filter_gradient(x, w, dy, padding)
    pixels = tf.shape(dy)[1] * tf.shape(dy)[2]
    return tf.cond(pixels >= MATMUL_GRADIENT_MIN_PIXELS,
                   lambda: _filter_gradient(x, dy, kh, kw, padding),
                   lambda: _native_filter_gradient(x, w, dy, padding))


def _native_filter_gradient(x, w, dy, padding):
    import tensorflow as tf

    return tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=tf.shape(w), out_backprop=dy,
        strides=[1, 1, 1, 1], padding=padding)


def _filter_gradient(x, dy, kh, kw, padding):
    """d loss / d kernel [kh, kw, C_in, C_out] of a stride-1 conv with
    input x [batch, H, W, C_in] and output gradient dy [batch, H', W',
    C_out]: for each kernel tap, the input window it saw, flattened to
    [batch * H' * W', C_in], transposed times dy flattened alike."""
    import tensorflow as tf

    if padding == "SAME":
        x = tf.pad(x, [[0, 0], [kh // 2, (kh - 1) // 2],
                       [kw // 2, (kw - 1) // 2], [0, 0]])
    height, width = tf.shape(dy)[1], tf.shape(dy)[2]
    channels = x.shape[-1]
    flat_dy = tf.reshape(dy, [-1, dy.shape[-1]])
    taps = []
    for row in range(kh):
        for col in range(kw):
            window = x[:, row:row + height, col:col + width, :]
            taps.append(tf.matmul(tf.reshape(window, [-1, channels]),
                                  flat_dy, transpose_a=True))
    return tf.reshape(tf.stack(taps), [kh, kw, channels, -1])


def on_cpu_else(cpu_fn, other_fn):
    """cpu_fn() where the op runs on a CPU, other_fn() on any other device
    (a GPU) and under XLA: both are traced, and TensorFlow's DeviceIndex
    op, placed with them, picks one when the graph runs (0 on a CPU).
    Both must return tensors of the same dtype and rank.

    A switch_case, lowered to Switch and Merge ops outside XLA, so that
    the branch not taken costs nothing and each op is placed on its own
    (tf.__internal__.execute_fn_for_device keeps a Case op, whose
    gradient crashed a training step on the CPU). Under XLA only the
    plain convolution is traced, as that function does.
    """
    import tensorflow as tf

    if _in_xla_context():
        return other_fn()
    index = tf.raw_ops.DeviceIndex(device_names=["CPU"])
    return tf.switch_case(index, [cpu_fn, other_fn],
                          name="conv_kernels_by_device")


def _in_xla_context():
    """Whether the graph being traced is compiled by XLA (jit_compile)."""
    import tensorflow as tf
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # moved: say no, DeviceIndex then tells
        return False
    return control_flow_util.GraphOrParentsInXlaContext(
        tf.compat.v1.get_default_graph())


def _winograd_from(inputs, kernel, threshold, otherwise):
    """winograd.conv3x3_same(inputs, kernel) where the output has at least
    threshold = (pixels, per_image) pixels, else otherwise(); decided when
    traced if the map size is known then, else each call."""
    import tensorflow as tf

    pixels, per_image = threshold
    if pixels == 0:
        return winograd.conv3x3_same(inputs, kernel)
    dims = list(inputs.shape[1:3]) if per_image else list(inputs.shape[:3])
    if None not in dims:
        if int(np.prod(dims)) >= pixels:
            return winograd.conv3x3_same(inputs, kernel)
        return otherwise()
    shape = tf.shape(inputs)
    count = tf.reduce_prod(shape[1:3] if per_image else shape[:3])
    return tf.cond(count >= pixels,
                   lambda: winograd.conv3x3_same(inputs, kernel), otherwise)


@keras.saving.register_keras_serializable(package="mrcnn")
class Conv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D running the ops chosen above; same weights,
    arguments and outputs (to float rounding)."""

    def convolution_op(self, inputs, kernel):
        if tuple(self.dilation_rate) != (1, 1) or self.groups != 1:
            return super().convolution_op(inputs, kernel)
        kh, kw = tuple(self.kernel_size)
        if (self.padding == "valid" and tuple(self.strides) == (1, 1)
                and tuple(inputs.shape[1:3]) == (kh, kw)):
            # A matrix product on any device: a fully connected layer.
            return self._whole_input_matmul(inputs, kernel)
        cpu_kernels = self._cpu_kernels(inputs, kernel)
        if cpu_kernels is None:
            return super().convolution_op(inputs, kernel)
        return on_cpu_else(
            cpu_kernels, lambda: super(Conv2D, self).convolution_op(
                inputs, kernel))

    def _cpu_kernels(self, inputs, kernel):
        """The convolution a CPU runs, as a function of no argument; None
        where that is Keras' own (decided when traced)."""
        if (tuple(self.kernel_size) == (3, 3)
                and tuple(self.strides) == (1, 1) and self.padding == "same"
                and min(int(inputs.shape[-1]), self.filters)
                >= WINOGRAD_MIN_CHANNELS):
            threshold = winograd_threshold(inputs.dtype)
            if threshold is not None:
                otherwise = (self._matmul_kernels(inputs, kernel)
                             or (lambda: super(Conv2D, self).convolution_op(
                                 inputs, kernel)))
                return lambda: _winograd_from(inputs, kernel, threshold,
                                              otherwise)
        return self._matmul_kernels(inputs, kernel)

    def _matmul_kernels(self, inputs, kernel):
        """The matrix-product formulation a CPU takes where Winograd is
        not taken, as a function of no argument; None for Keras' own."""
        kh, kw = tuple(self.kernel_size)
        strides = tuple(self.strides)
        if not matmul_kernels():
            return None
        if (kh, kw) == (1, 1):
            return lambda: self._pointwise_matmul(inputs, kernel, strides)
        if strides == (1, 1) and (self.padding == "valid" or (kh % 2
                                                              and kw % 2)):
            return lambda: conv2d_matmul_filter_gradient(inputs, kernel,
                                                         self.padding)
        return None

    def _whole_input_matmul(self, inputs, kernel):
        """[N, kh, kw, c] -> [N, 1, 1, filters] as [N, kh*kw*c] @ kernel."""
        flat = ops.reshape(inputs, (-1, int(np.prod(kernel.shape[:3]))))
        outputs = ops.matmul(flat, ops.reshape(kernel, (-1, self.filters)))
        return ops.reshape(outputs, (-1, 1, 1, self.filters))

    def _pointwise_matmul(self, inputs, kernel, strides):
        """A 1x1 conv (any padding: none is needed) as a product over the
        channels of [N * H' * W', c]."""
        if strides != (1, 1):
            inputs = inputs[:, ::strides[0], ::strides[1], :]
        shape = ops.shape(inputs)
        flat = ops.reshape(inputs, (-1, inputs.shape[-1]))
        outputs = ops.matmul(flat, ops.reshape(kernel, (-1, self.filters)))
        return ops.reshape(outputs, (shape[0], shape[1], shape[2],
                                     self.filters))
