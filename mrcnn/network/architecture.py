"""The Mask R-CNN graph, stage by stage, as in the paper.

    image -> backbone (ResNet) -> FPN -> RPN over P2..P6 -> proposals
          -> [training] sampled ROIs with targets -> box/class head, mask head
          -> [inference] box/class head -> detections -> mask head

This is the one place where a ``Config`` becomes graph arguments: every layer
below receives plain values. The layers that code elsewhere finds by name
are named with the constants of ``mrcnn.network.layer_names``.
"""

import keras

from mrcnn import data
from mrcnn.constants import LOSS_NAMES, pyramid_size_error  # noqa: F401
from mrcnn.network.backbone import fpn_graph, resnet_graph
from mrcnn.network.detection import DetectionLayer
from mrcnn.network.graph_layers import (ActiveClassIdsLayer, AnchorLayer,
                                        DetectionBoxesLayer, IdentityLayer,
                                        NormBoxesLayer)
from mrcnn.network.heads import (PositiveRois, build_fpn_mask_graph,
                                 fpn_classifier_graph)
from mrcnn.network.layer_names import (
    ACTIVE_CLASS_IDS, ANCHORS, DETECTION_BOXES, DETECTIONS, MASK_ROIS,
    MRCNN_BBOX, MRCNN_BBOX_FC, NORM_GT_BOXES, NORM_INPUT_ROIS, OUTPUT_ROIS,
    PROPOSAL_TARGETS, PROPOSALS, ROI_ALIGN_CLASSIFIER, ROI_ALIGN_MASK,
    RPN_BBOX, RPN_CLASS, RPN_CLASS_LOGITS)
from mrcnn.network.losses import (MRCNNBboxLoss, MRCNNClassLoss, MRCNNMaskLoss,
                                  RPNBboxLoss, RPNClassLoss,
                                  class_loss_options)
from mrcnn.network.rpn import ProposalLayer, build_rpn_model
from mrcnn.network.targets import DetectionTargetLayer
from mrcnn.structures.boxes import DELTA_CLAMP

# The layers whose outputs are box coordinates or box deltas, by graph (the
# names of the layers built below). They compute in float32 whatever the
# dtype policy: bfloat16 keeps 8 bits of mantissa, so a box near 1024 px
# would move by up to 4 px, and the mask head would crop elsewhere than
# where its targets were cut. "norm_input_rois" exists where USE_RPN_ROIS
# is False, "mask_rois" where the mask head runs on the positive ROIs
# (mask_head_on_positives). tests/test_mixed_precision.py holds the graphs
# to these lists.
BOX_LAYERS = {
    "training": (NORM_GT_BOXES, NORM_INPUT_ROIS, ANCHORS, RPN_BBOX,
                 PROPOSALS, PROPOSAL_TARGETS, MASK_ROIS, OUTPUT_ROIS,
                 MRCNN_BBOX_FC, MRCNN_BBOX),
    "inference": (RPN_BBOX, PROPOSALS, MRCNN_BBOX_FC, MRCNN_BBOX,
                  DETECTIONS, DETECTION_BOXES),
}
# The layers that crop the feature maps at those boxes (both graphs): their
# box arithmetic is float32 too; the feature maps they read may be 16-bit.
ROI_ALIGN_LAYERS = (ROI_ALIGN_CLASSIFIER, ROI_ALIGN_MASK)


def check_image_shape(config):
    """ValueError if IMAGE_SHAPE's height or width can't go through the
    pyramid (see mrcnn.constants.pyramid_size_error)."""
    for side, size in zip(("height", "width"), config.IMAGE_SHAPE[:2]):
        problem = pyramid_size_error("IMAGE_SHAPE " + side, int(size))
        if problem:
            raise ValueError("{} (IMAGE_SHAPE {})".format(
                problem, list(config.IMAGE_SHAPE)))


def build_backbone(input_image, config):
    """Backbone + FPN. Returns (rpn_feature_maps P2..P6, mrcnn maps P2..P5)."""
    if callable(config.BACKBONE):
        _, c2, c3, c4, c5 = config.BACKBONE(
            input_image, stage5=True, train_bn=config.TRAIN_BN)
    else:
        _, c2, c3, c4, c5 = resnet_graph(
            input_image, config.BACKBONE, stage5=True,
            train_bn=config.TRAIN_BN, fold_bn=config.FOLD_BATCH_NORM)
    p2, p3, p4, p5, p6 = fpn_graph(c2, c3, c4, c5,
                                   pyramid_size=config.TOP_DOWN_PYRAMID_SIZE)
    return [p2, p3, p4, p5, p6], [p2, p3, p4, p5]


def build_rpn(rpn_feature_maps, config):
    """Shared RPN over every pyramid level, outputs concatenated over levels.

    Returns rpn_class_logits [batch, anchors, 2], rpn_class [batch, anchors, 2]
    and rpn_bbox [batch, anchors, (dy, dx, log(dh), log(dw))].
    """
    rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE,
                          len(config.RPN_ANCHOR_RATIOS),
                          config.TOP_DOWN_PYRAMID_SIZE,
                          conv_depth=config.RPN_CONV_DEPTH)
    per_level = [rpn(p) for p in rpn_feature_maps]
    names = [RPN_CLASS_LOGITS, RPN_CLASS, RPN_BBOX]
    # float32 like the RPN head's outputs: under mixed precision a
    # Concatenate would cast scores and deltas back to 16 bits.
    return [keras.layers.Concatenate(axis=1, dtype="float32", name=name)(
                list(outputs))
            for name, outputs in zip(names, zip(*per_level))]


def head_train_bn(config):
    """Batch-norm mode of the heads: HEAD_TRAIN_BN, else TRAIN_BN."""
    if config.HEAD_TRAIN_BN is None:
        return config.TRAIN_BN
    return config.HEAD_TRAIN_BN


def delta_clamp(config):
    """The largest log(dh), log(dw) the RPN and detection layers decode:
    DELTA_CLAMP (torchvision's log(1000 / 16)) when BBOX_DELTA_CLAMP is
    True, or None and the model computes in float16 (MIXED_PRECISION
    "mixed_float16"); None (no clamp, the original's numbers) otherwise."""
    clamp = config.BBOX_DELTA_CLAMP
    if clamp is None:
        clamp = config.MIXED_PRECISION == "mixed_float16"
    return DELTA_CLAMP if clamp else None


def mask_head_on_positives(config):
    """Whether the training mask head runs on the positive ROIs alone
    (PositiveRois): MASK_HEAD_POSITIVE_ROIS, else where the heads' batch
    norm is frozen (same losses and gradients; trained batch statistics
    would differ)."""
    if config.MASK_HEAD_POSITIVE_ROIS is None:
        return head_train_bn(config) is False
    return bool(config.MASK_HEAD_POSITIVE_ROIS)


def build_heads(rois, mrcnn_feature_maps, image_meta, config):
    """Class/box head on rois. Returns (logits, probs, deltas)."""
    return fpn_classifier_graph(
        rois, mrcnn_feature_maps, image_meta, config.POOL_SIZE,
        config.NUM_CLASSES, train_bn=head_train_bn(config),
        fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE,
        fold_bn=config.FOLD_BATCH_NORM)


def build_mask_head(rois, mrcnn_feature_maps, image_meta, config):
    """The mask head on rois [batch, num_rois, (y1, x1, y2, x2)] normalized;
    returns [batch, num_rois, MASK_SHAPE[0], MASK_SHAPE[1], NUM_CLASSES]
    mask probabilities."""
    return build_fpn_mask_graph(
        rois, mrcnn_feature_maps, image_meta, config.MASK_POOL_SIZE,
        config.NUM_CLASSES, train_bn=head_train_bn(config),
        conv_depth=config.MASK_HEAD_CONV_DEPTH,
        fold_bn=config.FOLD_BATCH_NORM)


def configure_batch_norm(keras_model, config):
    """Gives every batch norm layer of keras_model (nested models and the
    heads' TimeDistributed wrappers too) the moving-average momentum
    BATCH_NORM_MOMENTUM. Layers read it when a
    training step is traced, so this applies to a model built but not yet
    trained. Returns the number of layers set."""
    count = 0
    for layer in _all_layers(keras_model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(config.BATCH_NORM_MOMENTUM)
            count += 1
    return count


def _all_layers(model):
    for layer in model.layers:
        while isinstance(layer, keras.layers.Wrapper):
            yield layer
            layer = layer.layer
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def build_inputs(config):
    """The image [batch, height, width, IMAGE_CHANNEL_COUNT] (molded) and
    image meta [batch, IMAGE_META_SIZE] inputs both graphs share."""
    channels = config.IMAGE_CHANNEL_COUNT
    input_image = keras.Input(shape=[None, None, channels], name="input_image")
    input_image_meta = keras.Input(shape=[config.IMAGE_META_SIZE],
                                   name="input_image_meta")
    return input_image, input_image_meta


def build_training_graph(config):
    """Inputs and outputs of the training model (losses are outputs too).

    Returns (inputs list, outputs list, loss output names).
    """
    check_image_shape(config)
    inputs = _training_inputs(config)
    (input_image, input_image_meta, input_rpn_match, input_rpn_bbox,
     input_gt_class_ids, input_gt_boxes, input_gt_masks) = inputs

    gt_boxes = NormBoxesLayer(name=NORM_GT_BOXES)([input_gt_boxes,
                                                   input_image])
    rpn_feature_maps, mrcnn_feature_maps = build_backbone(input_image, config)
    rpn_class_logits, rpn_class, rpn_bbox = build_rpn(rpn_feature_maps, config)
    rpn_rois = _training_proposals(config, input_image, rpn_class, rpn_bbox)

    active_class_ids = ActiveClassIdsLayer(name=ACTIVE_CLASS_IDS)(
        input_image_meta)
    if config.USE_RPN_ROIS:
        target_rois = rpn_rois
    else:
        # Externally generated ROIs (pixels), e.g. random ones from the feed.
        input_rois = keras.Input(shape=[config.POST_NMS_ROIS_TRAINING, 4],
                                 name="input_rois", dtype="int32")
        inputs.append(input_rois)
        target_rois = NormBoxesLayer(name=NORM_INPUT_ROIS)(
            [input_rois, input_image])

    rois, target_class_ids, target_bbox, target_mask = _proposal_targets(
        config, target_rois, input_gt_class_ids, gt_boxes, input_gt_masks)

    mrcnn_class_logits, mrcnn_class, mrcnn_bbox = build_heads(
        rois, mrcnn_feature_maps, input_image_meta, config)
    mask_rois = rois
    if mask_head_on_positives(config):
        mask_rois = PositiveRois(name=MASK_ROIS)([rois, target_class_ids])
    mrcnn_mask = build_mask_head(mask_rois, mrcnn_feature_maps,
                                 input_image_meta, config)
    output_rois = IdentityLayer(name=OUTPUT_ROIS)(rois)

    # In LOSS_NAMES' order, each layer named as its loss (its default).
    losses = [
        RPNClassLoss()([input_rpn_match, rpn_class_logits]),
        RPNBboxLoss()([input_rpn_bbox, input_rpn_match, rpn_bbox]),
        MRCNNClassLoss(**class_loss_options(config))(
            [target_class_ids, mrcnn_class_logits, active_class_ids]),
        MRCNNBboxLoss()([target_bbox, target_class_ids, mrcnn_bbox]),
        MRCNNMaskLoss()([target_mask, target_class_ids, mrcnn_mask]),
    ]
    outputs = [rpn_class_logits, rpn_class, rpn_bbox, mrcnn_class_logits,
               mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois, output_rois,
               *losses]
    return inputs, outputs


def _training_inputs(config):
    """The seven inputs MaskRCNNDataset feeds: image, image meta, rpn_match
    [batch, anchors, 1] int32, rpn_bbox [batch, RPN_TRAIN_ANCHORS_PER_IMAGE,
    4], gt_class_ids [batch, MAX_GT_INSTANCES] int32, gt_boxes
    [batch, MAX_GT_INSTANCES, (y1, x1, y2, x2)] pixels and gt_masks
    [batch, mask_h, mask_w, MAX_GT_INSTANCES] bool (MINI_MASK_SHAPE or
    IMAGE_SHAPE[:2])."""
    input_image, input_image_meta = build_inputs(config)
    input_rpn_match = keras.Input(shape=[None, 1], name="input_rpn_match",
                                  dtype="int32")
    input_rpn_bbox = keras.Input(shape=[None, 4], name="input_rpn_bbox")
    input_gt_class_ids = keras.Input(shape=[None], name="input_gt_class_ids",
                                     dtype="int32")
    input_gt_boxes = keras.Input(shape=[None, 4], name="input_gt_boxes")
    if config.USE_MINI_MASK:
        mask_hw = list(config.MINI_MASK_SHAPE)
    else:
        mask_hw = list(config.IMAGE_SHAPE[:2])
    input_gt_masks = keras.Input(shape=mask_hw + [None], name="input_gt_masks",
                                 dtype="bool")
    return [input_image, input_image_meta, input_rpn_match, input_rpn_bbox,
            input_gt_class_ids, input_gt_boxes, input_gt_masks]


def _training_proposals(config, input_image, rpn_class, rpn_bbox):
    """POST_NMS_ROIS_TRAINING proposals [batch, rois, (y1, x1, y2, x2)]
    normalized, from the anchors of IMAGE_SHAPE (built in the graph)."""
    backbone_shapes = data.compute_backbone_shapes(config, config.IMAGE_SHAPE)
    anchors = AnchorLayer(
        config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, backbone_shapes,
        config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE,
        config.IMAGE_SHAPE, name=ANCHORS)(input_image)
    return ProposalLayer(
        proposal_count=config.POST_NMS_ROIS_TRAINING,
        nms_threshold=config.RPN_NMS_THRESHOLD,
        pre_nms_limit=config.PRE_NMS_LIMIT,
        rpn_bbox_std_dev=list(config.RPN_BBOX_STD_DEV),
        delta_clamp=delta_clamp(config),
        name=PROPOSALS)([rpn_class, rpn_bbox, anchors])


def _proposal_targets(config, target_rois, gt_class_ids, gt_boxes, gt_masks):
    """DetectionTargetLayer from the Config: (rois [batch,
    TRAIN_ROIS_PER_IMAGE, 4] normalized, class ids, box deltas, masks)."""
    return DetectionTargetLayer(
        train_rois_per_image=config.TRAIN_ROIS_PER_IMAGE,
        roi_positive_ratio=config.ROI_POSITIVE_RATIO,
        mask_shape=list(config.MASK_SHAPE),
        use_mini_mask=config.USE_MINI_MASK,
        bbox_std_dev=list(config.BBOX_STD_DEV),
        add_gt_to_proposals=config.ADD_GT_TO_PROPOSALS,
        fill_with_negatives=config.ROI_FILL_WITH_NEGATIVES,
        name=PROPOSAL_TARGETS)([target_rois, gt_class_ids, gt_boxes,
                                gt_masks])


def build_inference_graph(config):
    """Inputs and outputs of the inference model.

    Inputs: input_image, input_image_meta and input_anchors
    [batch, anchors, (y1, x1, y2, x2)] normalized (from MaskRCNN.get_anchors),
    so that one model serves any molded image size.
    Outputs: detections [batch, DETECTION_MAX_INSTANCES, (y1, x1, y2, x2,
    class_id, score)] normalized, mrcnn_class, mrcnn_bbox, mrcnn_mask
    [batch, DETECTION_MAX_INSTANCES, h, w, num_classes], rpn_rois, rpn_class,
    rpn_bbox.
    """
    check_image_shape(config)
    input_image, input_image_meta = build_inputs(config)
    input_anchors = keras.Input(shape=[None, 4], name="input_anchors")
    rpn_feature_maps, mrcnn_feature_maps = build_backbone(input_image, config)
    rpn_class_logits, rpn_class, rpn_bbox = build_rpn(rpn_feature_maps, config)
    rpn_rois = ProposalLayer(
        proposal_count=config.POST_NMS_ROIS_INFERENCE,
        nms_threshold=config.RPN_NMS_THRESHOLD,
        pre_nms_limit=config.PRE_NMS_LIMIT,
        rpn_bbox_std_dev=list(config.RPN_BBOX_STD_DEV),
        delta_clamp=delta_clamp(config),
        name=PROPOSALS)([rpn_class, rpn_bbox, input_anchors])

    _, mrcnn_class, mrcnn_bbox = build_heads(
        rpn_rois, mrcnn_feature_maps, input_image_meta, config)
    detections = DetectionLayer(
        max_instances=config.DETECTION_MAX_INSTANCES,
        min_confidence=config.DETECTION_MIN_CONFIDENCE,
        nms_threshold=config.DETECTION_NMS_THRESHOLD,
        bbox_std_dev=list(config.BBOX_STD_DEV),
        delta_clamp=delta_clamp(config),
        name=DETECTIONS)([rpn_rois, mrcnn_class, mrcnn_bbox,
                          input_image_meta])
    detection_boxes = DetectionBoxesLayer(name=DETECTION_BOXES)(detections)
    mrcnn_mask = build_mask_head(detection_boxes, mrcnn_feature_maps,
                                 input_image_meta, config)
    inputs = [input_image, input_image_meta, input_anchors]
    outputs = [detections, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois,
               rpn_class, rpn_bbox]
    return inputs, outputs
