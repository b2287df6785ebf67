"""ONNX export: the serving graph of ``mrcnn.inference.export`` in ONNX,
for onnxruntime (no TensorFlow needed to run it).

    model.export("mask_rcnn.onnx", format="onnx", class_names=names)

    import onnxruntime
    session = onnxruntime.InferenceSession("mask_rcnn.onnx")
    outputs = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {"images": batch})))

The input and outputs are those of the SavedModel's ``serving_default``
(uint8 ``images`` [N, H, W, C], any H and W; ``num_detections``,
``boxes``, ``class_ids``, ``scores``, ``mask_probs`` and, unless
``full_masks=False``, ``masks``). The graph is traced in portable ops
(``export_portable.portable_graph``) and converted by tf2onnx (tested:
tf2onnx 1.17, onnx 1.23, onnxruntime 1.32, TensorFlow 2.21). The file's
``metadata_props`` hold ``mrcnn``: a JSON description of the inputs,
outputs and class names (``read_onnx_metadata``).
"""

import json

import tensorflow as tf

from mrcnn.inference.export import serving_function
from mrcnn.inference.export_portable import (
    METADATA_KEY, check_float32, metadata, portable_graph, require)

# ONNX operator set: 17 has every op the graph needs and runs on the
# onnxruntime releases of the last years.
DEFAULT_OPSET = 17


def onnx_model(model, full_masks=True, class_names=None,
               opset=DEFAULT_OPSET):
    """The ONNX ModelProto of `model` (a MaskRCNN in inference mode), its
    metadata included; checked by onnx's checker (an op that ONNX lacks
    fails here, not in the runtime)."""
    check_float32(model, "onnx")
    tf2onnx = require("tf2onnx", "export to ONNX")
    onnx = require("onnx", "export to ONNX")
    serve = serving_function(model, full_masks=full_masks, portable=True)
    spec = tf.TensorSpec([None, None, None, model.config.IMAGE_CHANNEL_COUNT],
                         tf.uint8, name="images")
    with portable_graph(model.keras_model):
        proto, _ = tf2onnx.convert.from_function(
            serve, input_signature=[spec], opset=opset)
    description = metadata(model, "onnx", full_masks, class_names)
    onnx.helper.set_model_props(
        proto, {METADATA_KEY: json.dumps(description)})
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, path, full_masks=True, class_names=None,
                opset=DEFAULT_OPSET):
    """Writes `model` as an ONNX file at `path` (see the module docstring).

    full_masks: also output image-size masks (D * H * W bytes per image).
    class_names: NUM_CLASSES names, "BG" first, stored in the metadata.
    Returns path.
    """
    onnx = require("onnx", "export to ONNX")
    proto = onnx_model(model, full_masks, class_names, opset)
    onnx.save(proto, str(path))
    return path


def read_onnx_metadata(path):
    """The ``mrcnn`` metadata of an exported ONNX file, as a dict (onnx
    only; onnxruntime gives the same through
    ``session.get_modelmeta().custom_metadata_map["mrcnn"]``)."""
    onnx = require("onnx", "reading an ONNX file")
    proto = onnx.load(str(path), load_external_data=False)
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    raise ValueError("{}: no {!r} metadata (not exported by mrcnn?)".format(
        path, METADATA_KEY))
