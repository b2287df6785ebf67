"""Training targets of the detection heads (matterport's DetectionTargetLayer).

For each image, proposals are labelled against the ground truth, sampled
to a fixed number of ROIs with a set share of positives, and given the
class, box refinement and mask the heads should predict for them.
"""

import keras
import tensorflow as tf

from mrcnn.constants import CROWD_IOU, HEAD_POSITIVE_IOU
from mrcnn.network.box_ops import (encode_boxes_graph, overlaps_graph,
                                   trim_zeros_graph)


def _split_crowds(gt_class_ids, gt_boxes, gt_masks):
    """Drops the zero padding of the GT and separates crowd boxes.

    gt_class_ids: [MAX_GT] int32 (0 padding, negative crowd).
    gt_boxes: [MAX_GT, (y1, x1, y2, x2)] normalized.
    gt_masks: [height, width, MAX_GT] float32.
    Returns: class_ids [G], boxes [G, 4], masks [G, height, width] of the
    non-crowd instances, and crowd_boxes [C, 4].
    """
    gt_boxes, non_zeros = trim_zeros_graph(gt_boxes, name="trim_gt_boxes")
    gt_class_ids = tf.boolean_mask(gt_class_ids, non_zeros)
    gt_masks = tf.boolean_mask(tf.transpose(gt_masks, [2, 0, 1]), non_zeros)
    crowd = gt_class_ids < 0
    instance = gt_class_ids > 0
    return (tf.boolean_mask(gt_class_ids, instance),
            tf.boolean_mask(gt_boxes, instance),
            tf.boolean_mask(gt_masks, instance),
            tf.boolean_mask(gt_boxes, crowd))


def _sample_rois(overlaps, crowd_overlaps, train_rois_per_image,
                 roi_positive_ratio, fill_with_negatives=False):
    """Picks the positive and negative proposals to train on.

    overlaps: [N, G] IoU of proposals with the non-crowd GT boxes.
    crowd_overlaps: [N, C] IoU with the crowd boxes.
    Positives (IoU >= HEAD_POSITIVE_IOU, 0.5: >= as the original's graph,
    see mrcnn.constants) are capped at int(T * ratio); negatives (IoU < 0.5
    and crowd IoU < CROWD_IOU) are then taken so that positives make up the
    ratio of the ROIs, or, when there is no positive at all (or with
    fill_with_negatives), fill all T slots.
    Returns: positive_ix [P] and negative_ix [M] proposal indices (int32),
    each a random subset.
    """
    # The max over an empty axis (no GT, no crowd) is -inf: all proposals
    # are then below both thresholds.
    roi_iou_max = tf.reduce_max(overlaps, axis=1)
    no_crowd = tf.reduce_max(crowd_overlaps, axis=1) < CROWD_IOU
    positive_ix = tf.where(roi_iou_max >= HEAD_POSITIVE_IOU)[:, 0]
    negative_ix = tf.where((roi_iou_max < HEAD_POSITIVE_IOU) & no_crowd)[:, 0]

    max_positives = int(train_rois_per_image * roi_positive_ratio)
    positive_ix = tf.random.shuffle(positive_ix)[:max_positives]
    positive_count = tf.shape(positive_ix)[0]
    # float64 so that e.g. 66 / 0.33 gives 200, not 199.99998.
    rois_for_ratio = tf.cast(
        tf.cast(positive_count, tf.float64) / roi_positive_ratio, tf.int32)
    if fill_with_negatives:
        roi_count = train_rois_per_image
    else:
        roi_count = tf.where(positive_count > 0,
                             tf.minimum(rois_for_ratio, train_rois_per_image),
                             train_rois_per_image)
    negative_ix = tf.random.shuffle(negative_ix)[:roi_count - positive_count]
    return tf.cast(positive_ix, tf.int32), tf.cast(negative_ix, tf.int32)


def _mask_targets(rois, gt_boxes, gt_masks, mask_shape, use_mini_mask):
    """Crops each ROI's area out of its GT mask, resized to mask_shape.

    rois, gt_boxes: [P, (y1, x1, y2, x2)] normalized, ROI and its GT box.
    gt_masks: [P, height, width] the assigned GT masks, either full image
        size or mini masks (the content of the GT box, resized).
    Returns: [P, mask_height, mask_width] float32 in {0, 1}.
    """
    if use_mini_mask:
        # A mini mask spans its GT box: express the ROI in that frame.
        gt_y1, gt_x1, gt_y2, gt_x2 = tf.split(gt_boxes, 4, axis=1)
        gt_height = gt_y2 - gt_y1
        gt_width = gt_x2 - gt_x1
        y1, x1, y2, x2 = tf.split(rois, 4, axis=1)
        rois = tf.concat([(y1 - gt_y1) / gt_height, (x1 - gt_x1) / gt_width,
                          (y2 - gt_y1) / gt_height, (x2 - gt_x1) / gt_width],
                         axis=1)
    masks = tf.image.crop_and_resize(
        gt_masks[..., tf.newaxis], rois, tf.range(tf.shape(rois)[0]),
        mask_shape, method="bilinear")
    # Binary targets for the binary cross entropy.
    return tf.round(masks[..., 0])


def image_detection_targets(proposals, gt_class_ids, gt_boxes, gt_masks,
                            train_rois_per_image, roi_positive_ratio,
                            mask_shape, use_mini_mask,
                            bbox_std_dev=(0.1, 0.1, 0.2, 0.2),
                            add_gt_to_proposals=False,
                            fill_with_negatives=False):
    """Detection targets of one image.

    proposals: [N, (y1, x1, y2, x2)] normalized, zero-padded.
    gt_class_ids: [MAX_GT] int (0 padding, negative crowd).
    gt_boxes: [MAX_GT, (y1, x1, y2, x2)] normalized, zero-padded.
    gt_masks: [height, width, MAX_GT] bool or float, mini masks when
        use_mini_mask else image size.
    add_gt_to_proposals: also sample the (non-crowd) GT boxes themselves
        as proposals, so the heads see positives from the first step even
        while the RPN still proposes poorly (helps training from scratch).
    fill_with_negatives: fill all T slots, taking more negatives than the
        ratio asks for (as torchvision's sampler), so zero padding (and its
        weight in trained batch norm statistics) only remains when there
        are too few proposals.
    Returns, with T = train_rois_per_image, positives first, then negatives,
    then zero padding:
        rois: [T, (y1, x1, y2, x2)] normalized float32.
        class_ids: [T] int32, 0 for negatives and padding.
        deltas: [T, (dy, dx, log(dh), log(dw))] / bbox_std_dev, 0 for
            negatives and padding.
        masks: [T, mask_height, mask_width] float32 in {0, 1}.
    """
    proposals, _ = trim_zeros_graph(tf.cast(proposals, tf.float32),
                                    name="trim_proposals")
    gt_class_ids, gt_boxes, gt_masks, crowd_boxes = _split_crowds(
        tf.cast(gt_class_ids, tf.int32), tf.cast(gt_boxes, tf.float32),
        tf.cast(gt_masks, tf.float32))
    if add_gt_to_proposals:
        proposals = tf.concat([proposals, gt_boxes], axis=0)

    overlaps = overlaps_graph(proposals, gt_boxes)
    positive_ix, negative_ix = _sample_rois(
        overlaps, overlaps_graph(proposals, crowd_boxes),
        train_rois_per_image, roi_positive_ratio, fill_with_negatives)
    positive_rois = tf.gather(proposals, positive_ix)
    negative_rois = tf.gather(proposals, negative_ix)

    # Each positive ROI learns the GT box it overlaps most. argmax over an
    # empty axis raises, and without GT there are no positives anyway.
    positive_overlaps = tf.gather(overlaps, positive_ix)
    assignment = tf.cond(
        tf.shape(overlaps)[1] > 0,
        lambda: tf.argmax(positive_overlaps, axis=1, output_type=tf.int32),
        lambda: tf.zeros([0], tf.int32))
    roi_gt_boxes = tf.gather(gt_boxes, assignment)
    class_ids = tf.gather(gt_class_ids, assignment)
    deltas = encode_boxes_graph(positive_rois, roi_gt_boxes, bbox_std_dev)
    masks = _mask_targets(positive_rois, roi_gt_boxes,
                          tf.gather(gt_masks, assignment), mask_shape,
                          use_mini_mask)

    rois = tf.concat([positive_rois, negative_rois], axis=0)
    padding = train_rois_per_image - tf.shape(rois)[0]
    # Negatives and padding: class 0 (background), no box or mask target.
    negatives_and_padding = train_rois_per_image - tf.shape(positive_rois)[0]
    rois = tf.pad(rois, [[0, padding], [0, 0]])
    class_ids = tf.pad(class_ids, [[0, negatives_and_padding]])
    deltas = tf.pad(deltas, [[0, negatives_and_padding], [0, 0]])
    masks = tf.pad(masks, [[0, negatives_and_padding], [0, 0], [0, 0]])
    return rois, class_ids, deltas, masks


def detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks,
                            config):
    """matterport's signature of image_detection_targets, from a Config."""
    return image_detection_targets(
        proposals, gt_class_ids, gt_boxes, gt_masks,
        config.TRAIN_ROIS_PER_IMAGE, config.ROI_POSITIVE_RATIO,
        tuple(config.MASK_SHAPE), config.USE_MINI_MASK,
        tuple(float(v) for v in config.BBOX_STD_DEV),
        getattr(config, "ADD_GT_TO_PROPOSALS", False),
        getattr(config, "ROI_FILL_WITH_NEGATIVES", False))


@keras.saving.register_keras_serializable(package="mrcnn")
class DetectionTargetLayer(keras.layers.Layer):
    """Samples proposals and builds their class, box and mask targets.

    train_rois_per_image: T, ROIs kept per image (Config.TRAIN_ROIS_PER_IMAGE).
    roi_positive_ratio: share of positive ROIs (Config.ROI_POSITIVE_RATIO).
    mask_shape: (height, width) of the mask targets (Config.MASK_SHAPE).
    use_mini_mask: whether gt_masks are mini masks (Config.USE_MINI_MASK).
    bbox_std_dev: the box deltas are divided by it (Config.BBOX_STD_DEV).
    add_gt_to_proposals: sample the GT boxes as proposals too
        (Config.ADD_GT_TO_PROPOSALS).
    fill_with_negatives: fill the T slots with negatives beyond the ratio
        (Config.ROI_FILL_WITH_NEGATIVES).

    Inputs (a list):
        proposals: [batch, N, (y1, x1, y2, x2)] normalized, zero-padded.
        gt_class_ids: [batch, MAX_GT] int (0 padding, negative crowd).
        gt_boxes: [batch, MAX_GT, (y1, x1, y2, x2)] normalized.
        gt_masks: [batch, height, width, MAX_GT] bool or float.
    Outputs (see image_detection_targets), no gradient:
        rois [batch, T, 4] float32, target_class_ids [batch, T] int32,
        target_deltas [batch, T, 4] float32,
        target_masks [batch, T, mask_height, mask_width] float32.
    """

    def __init__(self, train_rois_per_image, roi_positive_ratio, mask_shape,
                 use_mini_mask, bbox_std_dev=(0.1, 0.1, 0.2, 0.2),
                 add_gt_to_proposals=False, fill_with_negatives=False,
                 **kwargs):
        # Box math stays float32 under a mixed precision policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.train_rois_per_image = int(train_rois_per_image)
        self.roi_positive_ratio = float(roi_positive_ratio)
        self.mask_shape = tuple(int(size) for size in mask_shape)
        self.use_mini_mask = bool(use_mini_mask)
        self.bbox_std_dev = tuple(float(v) for v in bbox_std_dev)
        self.add_gt_to_proposals = bool(add_gt_to_proposals)
        self.fill_with_negatives = bool(fill_with_negatives)
        if self.train_rois_per_image < 1:
            raise ValueError(
                "DetectionTargetLayer: train_rois_per_image must be positive, "
                "got {}".format(train_rois_per_image))
        if not 0 < self.roi_positive_ratio <= 1:
            raise ValueError(
                "DetectionTargetLayer: roi_positive_ratio must be in (0, 1], "
                "got {}".format(roi_positive_ratio))
        if len(self.mask_shape) != 2 or len(self.bbox_std_dev) != 4:
            raise ValueError(
                "DetectionTargetLayer: mask_shape needs 2 values and "
                "bbox_std_dev 4, got {!r} and {!r}".format(mask_shape,
                                                           bbox_std_dev))
        # Random sampling and data-dependent shapes: keep it out of XLA.
        self.supports_jit = False

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, gt_masks = [
            tf.stop_gradient(x) for x in inputs]
        rois_count = self.train_rois_per_image

        def targets_of_image(image_inputs):
            return image_detection_targets(
                *image_inputs, rois_count, self.roi_positive_ratio,
                self.mask_shape, self.use_mini_mask, self.bbox_std_dev,
                self.add_gt_to_proposals, self.fill_with_negatives)

        return list(tf.map_fn(
            targets_of_image, (proposals, gt_class_ids, gt_boxes, gt_masks),
            fn_output_signature=(
                tf.TensorSpec([rois_count, 4], tf.float32),
                tf.TensorSpec([rois_count], tf.int32),
                tf.TensorSpec([rois_count, 4], tf.float32),
                tf.TensorSpec([rois_count, *self.mask_shape], tf.float32))))

    def compute_output_shape(self, input_shape):
        batch = input_shape[0][0]
        rois = self.train_rois_per_image
        return [(batch, rois, 4), (batch, rois), (batch, rois, 4),
                (batch, rois) + self.mask_shape]

    def compute_output_spec(self, inputs):
        shapes = self.compute_output_shape([x.shape for x in inputs])
        dtypes = ["float32", "int32", "float32", "float32"]
        return [keras.KerasTensor(shape, dtype=dtype)
                for shape, dtype in zip(shapes, dtypes)]

    def get_config(self):
        config = super().get_config()
        config.update({
            "train_rois_per_image": self.train_rois_per_image,
            "roi_positive_ratio": self.roi_positive_ratio,
            "mask_shape": list(self.mask_shape),
            "use_mini_mask": self.use_mini_mask,
            "bbox_std_dev": list(self.bbox_std_dev),
            "add_gt_to_proposals": self.add_gt_to_proposals,
            "fill_with_negatives": self.fill_with_negatives,
        })
        return config
