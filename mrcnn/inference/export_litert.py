"""LiteRT (TFLite) export with built-in ops only: no Flex delegate, no
``SELECT_TF_OPS``, so that the ``ai-edge-litert`` interpreter runs it
without TensorFlow.

    model.export("mask_rcnn.tflite", format="tflite", class_names=names)

    from ai_edge_litert.interpreter import Interpreter
    runner = Interpreter("mask_rcnn.tflite").get_signature_runner()
    outputs = runner(images=image[None])   # uint8 [1, H, W, 3]

The input is one uint8 image of a fixed size, ``image_shape`` (default:
the molded size, IMAGE_MAX_DIM square for IMAGE_RESIZE_MODE "square",
where no resizing happens in the graph). The outputs are those of the
SavedModel's ``serving_default`` for a batch of one. The ROI crops are
gathers with bilinear weights and the non-max suppression the built-in
``NON_MAX_SUPPRESSION_V4`` (see ``export_portable``).

weights: "float32"; "float16" (weights stored as float16, computed in
float32: half the file); "int8" (dynamic-range quantization: int8
weights, activations quantized on the fly; a quarter of the file). The
README states what the last two give against ``detect()``.

The file carries the metadata (inputs, outputs, class names) as the
TFLite model metadata entry ``mrcnn`` (a JSON buffer), read back with
``read_litert_metadata`` or with the flatbuffers schema that ships with
ai-edge-litert.
"""

import json

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2)

from mrcnn.inference.export import serving_function
from mrcnn.inference.export_portable import (
    METADATA_KEY, check_float32, metadata, portable_graph, require)

WEIGHT_TYPES = ("float32", "float16", "int8")


def _molded_shape(config):
    if config.IMAGE_RESIZE_MODE != "square":
        raise ValueError(
            "export to tflite: give image_shape=(height, width) for "
            "IMAGE_RESIZE_MODE {!r}".format(config.IMAGE_RESIZE_MODE))
    return (config.IMAGE_MAX_DIM, config.IMAGE_MAX_DIM)


def _frozen_with_names(concrete):
    """The concrete function with its weights as constants, keeping its
    input and output names.

    Converted with its variables, the Keras model's weights stay resource
    variables in the TFLite file (VAR_HANDLE / READ_VARIABLE, never
    initialized: NaN out); frozen, the converter names the outputs
    output_0... unless a function returning the dict calls it.
    """
    frozen = convert_variables_to_constants_v2(concrete)
    names = list(concrete.structured_outputs)  # flattened: sorted keys
    (spec,) = concrete.structured_input_signature[0]

    @tf.function(input_signature=[spec])
    def serve(images):
        return dict(zip(sorted(names), frozen(images)))

    return serve.get_concrete_function()


def litert_flatbuffer(model, image_shape=None, full_masks=True,
                      weights="float32"):
    """The TFLite flatbuffer (bytes) of `model`, built-in ops only."""
    if weights not in WEIGHT_TYPES:
        raise ValueError("export to tflite: weights must be one of {}, got "
                         "{!r}".format(WEIGHT_TYPES, weights))
    check_float32(model, "tflite")
    image_shape = tuple(image_shape or _molded_shape(model.config))
    serve = serving_function(model, full_masks=full_masks, portable=True,
                             image_shape=image_shape)
    with portable_graph(model.keras_model):
        concrete = serve.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [_frozen_with_names(concrete)], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if weights != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if weights == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def with_metadata(flatbuffer, description):
    """The flatbuffer with `description` (JSON-able) added as the model
    metadata entry METADATA_KEY."""
    schema = require("ai_edge_litert.schema_py_generated",
                     "writing TFLite metadata")
    flatbuffers = require("flatbuffers", "writing TFLite metadata")
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(description).encode("utf-8"),
                                np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [entry]
    builder = flatbuffers.Builder(len(flatbuffer) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def export_litert(model, path, image_shape=None, full_masks=True,
                  weights="float32", class_names=None):
    """Writes `model` (a MaskRCNN in inference mode) as a .tflite file.

    image_shape: (height, width) of the input image (default: the molded
        size). weights: one of WEIGHT_TYPES. class_names: NUM_CLASSES
        names, "BG" first, stored in the metadata.
    Returns path.
    """
    image_shape = tuple(image_shape or _molded_shape(model.config))
    description = metadata(model, "tflite", full_masks, class_names,
                           image_shape=image_shape, weights=weights)
    flatbuffer = litert_flatbuffer(model, image_shape, full_masks, weights)
    with open(path, "wb") as out:
        out.write(with_metadata(flatbuffer, description))
    return path


def read_litert_metadata(path):
    """The ``mrcnn`` metadata entry of an exported .tflite file (dict)."""
    schema = require("ai_edge_litert.schema_py_generated",
                     "reading TFLite metadata")
    with open(path, "rb") as source:
        data = bytearray(source.read())
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode("utf-8") == METADATA_KEY:
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
            return json.loads(bytes(raw).decode("utf-8"))
    raise ValueError("{}: no {!r} metadata (not exported by mrcnn?)".format(
        path, METADATA_KEY))
