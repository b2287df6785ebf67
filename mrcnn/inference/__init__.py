"""Inference outside the graph: images in, detections out.

* ``molding``: input molding (resize, normalize, image metas, anchors) and
  the detect function;
* ``postprocess``: detections unmolded to the original image (boxes in
  pixels, full-size masks);
* ``tiling``: large images in overlapping tiles, detections merged;
* ``export``: a SavedModel with molding and unmolding in the graph;
  ``resize_graph``: skimage's bilinear resize in TensorFlow, bit for bit
  (the exported graph's resizing of images and masks);
* ``export_onnx``, ``export_litert``: the same graph as an ONNX file
  (onnxruntime) and a TFLite file with built-in ops only (LiteRT);
  ``export_portable``: what they share (the graph traced in portable ops,
  the metadata, the optional converters); ``paste_graph``: masks pasted
  in float32 without branches, for both; ``export_formats``: the one
  entry point (``MaskRCNN.export``).

May import: the network, data, structures and the foundation; never
training, evaluation or the faces.

``mrcnn.inference.X`` for a name of the 3.0.0 module ``mrcnn.inference``
still gives ``mrcnn.inference.molding.X``, with a DeprecationWarning.
"""

from mrcnn import _moved

__getattr__ = _moved.forward_names(__name__)
