"""The network: Mask R-CNN's graph, one module a stage of the paper.

* ``backbone``: ResNet and the feature pyramid (FPN), P2-P6;
* ``rpn``: the region proposal network and the proposal layer (RPN
  deltas applied to the anchors, NMS);
* ``roi_align``: multi-level ROIAlign (``PyramidROIAlign``);
* ``targets``: the detection-target layer (training: proposals sampled and
  matched to ground truth, box and mask targets);
* ``heads``: the box/class head and the mask head;
* ``detection``: the detection layer (inference: refined, NMS'd boxes);
* ``nms``: non-max suppression with the ordinary op, the same selections
  in every runtime (the proposal and detection layers' ``builtin_ops``,
  for the ONNX and LiteRT exports);
* ``losses``: the five losses;
* ``graph_layers``, ``batch_slice``: the small glue layers around raw
  TensorFlow ops; ``box_ops``: the graph-side box math, with the one box
  coder (``encode_boxes_graph`` / ``decode_boxes_graph``) that the RPN,
  target and detection stages share;
* ``conv``, ``winograd``: the CPU convolution kernels (same weights and
  results as Keras' ``Conv2D``);
* ``architecture``: the training and inference graphs from a ``Config``,
  the one place where a Config becomes graph arguments;
* ``layer_names``: the names of the layers code finds by name (no
  TensorFlow: the command line imports it).

May import: ``mrcnn.data`` (the image meta layout the graph parses),
``mrcnn.structures`` and the foundation (``config``, ``constants``,
``runtime``); never
training, inference, evaluation or the faces.
"""
