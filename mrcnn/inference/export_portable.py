"""What the ONNX and LiteRT exports share: the graph in portable ops, the
metadata stored in the files, and the optional converters.

The serving function of ``mrcnn.inference.export`` is traced once more
for these formats, with

* plain convolutions (``$MRCNN_CONV_KERNELS=native``: the converters do
  not take the Winograd and matrix-product kernels of ``network.conv``);
* the layers' ``builtin_ops`` flag: ROI crops by gathers and the ordinary
  non-max suppression (``network.roi_align.crop_and_resize_gather``,
  ``network.nms``), the same results as the graph's own ops.

Both are set for the tracing only and restored afterwards: the model's
own ``detect()`` keeps its kernels.
"""

import contextlib
import importlib
import importlib.metadata
import os

from mrcnn.network.detection import DetectionLayer
from mrcnn.network.roi_align import PyramidROIAlign
from mrcnn.network.rpn import ProposalLayer

CONV_KERNELS_ENV = "MRCNN_CONV_KERNELS"
# The pip extra that brings the converters and runtimes.
EXTRA = "mrcnn-keras3[export]"
METADATA_KEY = "mrcnn"


def require(module_name, what):
    """Imports an optional dependency of the export, or raises ImportError
    naming the extra that installs it."""
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(
            "{} needs the Python package {!r}: pip install '{}'".format(
                what, module_name.split(".")[0], EXTRA)) from error


def _portable_layers(keras_model):
    """Every layer of the model (nested models included) with a builtin_ops
    flag."""
    kinds = (PyramidROIAlign, DetectionLayer, ProposalLayer)
    found = []
    for layer in keras_model.layers:
        if isinstance(layer, kinds):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found.extend(_portable_layers(layer))
    return found


def check_float32(model, export_format):
    """ValueError unless `model` (a MaskRCNN) computes in float32."""
    if model.precision not in (None, "float32"):
        raise ValueError(
            "export to {}: the model computes in {} (MIXED_PRECISION {!r}); "
            "build the inference model with MIXED_PRECISION = None to export "
            "it (TFLite stores float16 weights with weights='float16')"
            .format(export_format, model.precision,
                    model.config.MIXED_PRECISION))


@contextlib.contextmanager
def portable_graph(keras_model):
    """While tracing inside this block, keras_model runs in ops that ONNX
    and the TFLite built-ins have (see the module docstring)."""
    layers = _portable_layers(keras_model)
    flags = [layer.builtin_ops for layer in layers]
    kernels = os.environ.get(CONV_KERNELS_ENV)
    os.environ[CONV_KERNELS_ENV] = "native"
    for layer in layers:
        layer.builtin_ops = True
    try:
        yield
    finally:
        for layer, flag in zip(layers, flags):
            layer.builtin_ops = flag
        if kernels is None:
            os.environ.pop(CONV_KERNELS_ENV, None)
        else:
            os.environ[CONV_KERNELS_ENV] = kernels


def _version():
    try:
        return importlib.metadata.version("mrcnn-keras3")
    except importlib.metadata.PackageNotFoundError:  # a source checkout
        return "(source)"


def metadata(model, export_format, full_masks, class_names=None,
             image_shape=None, weights="float32"):
    """The description stored in an exported file (JSON-able dict).

    image_shape: (height, width) of a fixed-size input, None for any size.
    class_names: a list of NUM_CLASSES names, "BG" first, or None.
    """
    config = model.config
    if class_names is not None:
        class_names = [str(name) for name in class_names]
        if len(class_names) != config.NUM_CLASSES:
            raise ValueError(
                "export: {} class names for a model of NUM_CLASSES={} "
                "(give the background, 'BG', first)".format(
                    len(class_names), config.NUM_CLASSES))
    height, width = image_shape or ("H", "W")
    batch = 1 if image_shape else "N"
    detections = config.DETECTION_MAX_INSTANCES
    mask_h, mask_w = config.MASK_SHAPE
    outputs = {
        "num_detections": ["int32", [batch]],
        "boxes": ["int32", [batch, detections, 4]],
        "class_ids": ["int32", [batch, detections]],
        "scores": ["float32", [batch, detections]],
        "mask_probs": ["float32", [batch, detections, mask_h, mask_w]],
    }
    if full_masks:
        outputs["masks"] = ["uint8", [batch, detections, height, width]]
    return {
        "producer": "mrcnn-keras3 {}".format(_version()),
        "format": export_format,
        "weights": weights,
        "name": config.NAME,
        "class_names": class_names,
        "inputs": {"images": ["uint8", [batch, height, width,
                                        config.IMAGE_CHANNEL_COUNT]]},
        "outputs": {name: {"dtype": dtype, "shape": shape}
                    for name, (dtype, shape) in outputs.items()},
        "boxes": "(y1, x1, y2, x2) pixels of the input image",
        "image_resize_mode": config.IMAGE_RESIZE_MODE,
        "image_max_dim": config.IMAGE_MAX_DIM,
        "detection_min_confidence": config.DETECTION_MIN_CONFIDENCE,
    }
