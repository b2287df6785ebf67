"""Pretrained RGB weights for images of another channel count.

The first convolution of a file trained on RGB images (``conv1``, kernel
``[kh, kw, 3, filters]``) does not fit a model whose IMAGE_CHANNEL_COUNT C
is not 3 (kernel ``[kh, kw, C, filters]``). Rather than leave that layer
random, ``load_weights(..., by_name=True)`` adapts the file's kernel:

* C > 3: the RGB kernels are kept, each extra channel gets their mean, and
  the whole kernel is scaled by 3 / C;
* C < 3: each channel gets the sum of the RGB kernels divided by C (C = 1:
  the sum itself).

Either way an input whose C channels all hold the same value g gives the
response the RGB kernel gives to (g, g, g): a gray image keeps the features
the network was trained on. The bias is kept as it is.
"""

import logging

import numpy as np

from mrcnn.weights.hdf5 import _FileLayer

logger = logging.getLogger(__name__)

# Layers that see the image itself: the ResNet stem of every backbone.
INPUT_LAYERS = ("conv1",)
RGB_CHANNELS = 3


def adapt_input_kernel(kernel, channels):
    """[kh, kw, 3, filters] RGB kernel -> [kh, kw, channels, filters].

    See the module docstring for the rule. Computed in float64 and
    returned in the kernel's dtype.
    """
    kernel = np.asarray(kernel)
    if kernel.ndim != 4 or kernel.shape[2] != RGB_CHANNELS:
        raise ValueError("adapt_input_kernel expects a [kh, kw, 3, filters] "
                         "kernel, got shape {}".format(kernel.shape))
    if channels < 1:
        raise ValueError("channels must be >= 1, got {}".format(channels))
    rgb = kernel.astype(np.float64)
    total = rgb.sum(axis=2, keepdims=True)  # [kh, kw, 1, filters]
    if channels < RGB_CHANNELS:
        adapted = np.repeat(total / channels, channels, axis=2)
    else:
        extra = np.repeat(total / RGB_CHANNELS, channels - RGB_CHANNELS,
                          axis=2)
        adapted = np.concatenate([rgb, extra], axis=2) * (
            RGB_CHANNELS / channels)
    return adapted.astype(kernel.dtype)


def is_adaptable(name, file_shapes, model_shapes):
    """True when layer `name` is an input layer whose file kernel is RGB and
    differs from the model's only in its input channels.

    file_shapes, model_shapes: weight shapes, kernel first then bias.
    """
    if name not in INPUT_LAYERS or len(file_shapes) != len(model_shapes) \
            or not file_shapes or len(file_shapes[0]) != 4:
        return False
    file_kernel, model_kernel = file_shapes[0], model_shapes[0]
    return (file_kernel[2] == RGB_CHANNELS and model_kernel[2] != RGB_CHANNELS
            and file_kernel[:2] + file_kernel[3:]
            == model_kernel[:2] + model_kernel[3:]
            and list(file_shapes[1:]) == list(model_shapes[1:]))


def adapted_file_layer(file_layer, channels, filepath):
    """The file layer with its kernel adapted to `channels`, logged."""
    kernel = file_layer.arrays[0][()]
    rest = [array[()] for array in file_layer.arrays[1:]]
    rule = ("RGB kernels kept, {} extra channel(s) set to their mean, all "
            "scaled by 3/{}".format(channels - RGB_CHANNELS, channels)
            if channels > RGB_CHANNELS else
            "each channel set to the sum of the RGB kernels / {}".format(
                channels))
    logger.warning("load_weights: %s of %s has 3 input channels and the "
                   "model %d (IMAGE_CHANNEL_COUNT); adapted its kernel: %s",
                   file_layer.name, filepath, channels, rule)
    return _FileLayer(file_layer.name,
                      [adapt_input_kernel(kernel, channels)] + rest, {})
