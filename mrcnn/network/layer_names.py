"""The names of the graph's layers that code finds by name.

Inference cuts the graph into sub-graphs at these layers, weight loading
skips the class-specific ones, tests and benchmarks read their outputs.
The modules that build the layers (``architecture``, ``heads``, ``rpn``,
``backbone``) name them with these constants and every lookup imports them
from here (``mrcnn.network.architecture`` re-exports them with the graph).

A module of its own, without TensorFlow, so that the command line can name
the head layers without loading the graph code, and so that ``heads``,
``rpn`` and ``backbone`` (below ``architecture``) can use them.

Weight files hold the weights by layer name (matterport's names, so that
its COCO .h5 loads): these values never change.
"""

# The RPN (one shared model applied to every pyramid level) and its
# outputs concatenated over the levels.
RPN_MODEL = "rpn_model"
RPN_CLASS_LOGITS = "rpn_class_logits"
RPN_CLASS = "rpn_class"
RPN_BBOX = "rpn_bbox"

# The pyramid's output layers by level: "fpn_p2" ... "fpn_p6".
FPN_OUTPUT = "fpn_p{}"
# P2..P5, the maps the box and mask heads crop.
MRCNN_FEATURE_MAPS = tuple(FPN_OUTPUT.format(level) for level in (2, 3, 4, 5))

ANCHORS = "anchors"                    # training graph only
PROPOSALS = "ROI"                      # ProposalLayer: [batch, N, 4]
NORM_GT_BOXES = "norm_gt_boxes"        # training graph only
NORM_INPUT_ROIS = "norm_input_rois"    # where USE_RPN_ROIS is False
ACTIVE_CLASS_IDS = "active_class_ids"  # training graph only
PROPOSAL_TARGETS = "proposal_targets"  # DetectionTargetLayer
MASK_ROIS = "mask_rois"                # training on positive ROIs only
OUTPUT_ROIS = "output_rois"            # training graph only
DETECTIONS = "mrcnn_detection"         # DetectionLayer, inference only
DETECTION_BOXES = "detection_boxes"    # inference only

# The heads (mrcnn.network.heads).
ROI_ALIGN_CLASSIFIER = "roi_align_classifier"
MRCNN_CLASS_LOGITS = "mrcnn_class_logits"
MRCNN_CLASS = "mrcnn_class"
MRCNN_BBOX_FC = "mrcnn_bbox_fc"
MRCNN_BBOX = "mrcnn_bbox"
ROI_ALIGN_MASK = "roi_align_mask"
MRCNN_MASK = "mrcnn_mask"

# Layers whose weight shapes depend on NUM_CLASSES: skip them to start from
# weights trained on another class count (e.g. COCO's 81). A list, as
# load_weights' exclude argument.
CLASS_SPECIFIC_LAYERS = [MRCNN_CLASS_LOGITS, MRCNN_BBOX_FC, MRCNN_BBOX,
                         MRCNN_MASK]

# The loss layers are named as the losses: mrcnn.constants.LOSS_NAMES.
