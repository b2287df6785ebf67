"""The training feed: one image's sample and ``MaskRCNNDataset``.

``MaskRCNNDataset`` (alias ``DataSequence``) is a thread-safe
``keras.utils.PyDataset`` giving one dict of model inputs per batch,
reproducible per (epoch, batch index) given a seed.
"""

import logging
import math

import numpy as np
import keras

from mrcnn.structures.anchors import generate_pyramid_anchors
from mrcnn.structures import dropped
from mrcnn.data.anchor_index import _AnchorIndex
from mrcnn.data.augment import seeded_copy
from mrcnn.data.detection_targets import (build_detection_targets,
                                          generate_random_rois)
from mrcnn.data.loading import describe_image, load_image_gt
from mrcnn.data.meta import compute_backbone_shapes, mold_image
from mrcnn.data.rpn_targets import _rpn_targets

logger = logging.getLogger(__name__)


def _training_anchors(config):
    """Pixel anchors for config.IMAGE_SHAPE (read-only) and their index."""
    backbone_shapes = compute_backbone_shapes(config, config.IMAGE_SHAPE)
    anchors = generate_pyramid_anchors(
        config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, backbone_shapes,
        config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    anchors.flags.writeable = False
    return anchors, _AnchorIndex(anchors)


def _training_sample(dataset, config, image_id, anchors, index, rng,
                     augment=False, augmentation=None, random_rois=0,
                     detection_targets=False):
    """Everything one image contributes to a training batch.

    Returns None when the image has no instances (nothing to train on),
    else a dict: image, image_meta, rpn_match, rpn_bbox, gt_class_ids,
    gt_boxes, gt_masks (all GT instances, not yet capped at
    MAX_GT_INSTANCES) and, with random_rois, rpn_rois (+ rois,
    mrcnn_class_ids, mrcnn_bbox, mrcnn_mask with detection_targets).
    """
    image, image_meta, gt_class_ids, gt_boxes, gt_masks = load_image_gt(
        dataset, config, image_id, augment=augment, augmentation=augmentation,
        use_mini_mask=config.USE_MINI_MASK)
    if not np.any(gt_class_ids > 0):
        return None
    rpn_match, rpn_bbox = _rpn_targets(index, anchors, gt_class_ids, gt_boxes,
                                       config, rng)
    sample = {"image": image, "image_meta": image_meta,
              "rpn_match": rpn_match, "rpn_bbox": rpn_bbox,
              "gt_class_ids": gt_class_ids, "gt_boxes": gt_boxes,
              "gt_masks": gt_masks}
    if random_rois:
        sample["rpn_rois"] = generate_random_rois(
            image.shape, random_rois, gt_class_ids, gt_boxes, rng=rng)
        if detection_targets:
            (sample["rois"], sample["mrcnn_class_ids"], sample["mrcnn_bbox"],
             sample["mrcnn_mask"]) = build_detection_targets(
                sample["rpn_rois"], gt_class_ids, gt_boxes, gt_masks, config,
                rng=rng)
    return sample


def _cap_instances(sample, max_instances, rng, description):
    """Keeps a random max_instances of the GT instances (sorted), warning."""
    count = len(sample["gt_class_ids"])
    if count <= max_instances:
        return sample
    logger.warning("%s has %d instances, more than MAX_GT_INSTANCES=%d; "
                   "using a random subset", description, count,
                   max_instances)
    ids = np.sort(rng.choice(count, max_instances, replace=False))
    sample = dict(sample)
    sample["gt_class_ids"] = sample["gt_class_ids"][ids]
    sample["gt_boxes"] = sample["gt_boxes"][ids]
    sample["gt_masks"] = sample["gt_masks"][:, :, ids]
    return sample


def _pad_instances(samples, key, shape_tail, dtype, axis):
    """Stacks per-image instance arrays into zeros of [batch] + shape_tail.

    axis: the instance axis of the arrays (0 or -1).
    """
    out = np.zeros((len(samples),) + tuple(shape_tail), dtype=dtype)
    for b, sample in enumerate(samples):
        values = sample[key]
        count = values.shape[axis]
        if axis == 0:
            out[b, :count] = values
        else:
            out[b, ..., :count] = values
    return out


class MaskRCNNDataset(keras.utils.PyDataset):
    """Training batches for MaskRCNN.keras_model as a Keras PyDataset.

    Each item is one dict of numpy arrays keyed by the model input names:
    input_image float32 [B, H, W, C] (molded), input_image_meta float32
    [B, META], input_rpn_match int32 [B, anchors, 1], input_rpn_bbox float32
    [B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4], input_gt_class_ids int32
    [B, MAX_GT_INSTANCES], input_gt_boxes float32 [B, MAX_GT_INSTANCES, 4]
    (pixels), input_gt_masks bool [B, mask_h, mask_w, MAX_GT_INSTANCES]
    (MINI_MASK_SHAPE or IMAGE_SHAPE[:2]) and, with random_rois > 0,
    input_rois int32 [B, random_rois, 4] (pixels).

    Batch idx of epoch e depends only on (seed, e, idx), so batches can be
    built in any order by worker threads (use_multiprocessing is refused:
    forked processes deadlock TensorFlow). Images without instances are
    skipped (the next image is used) with a warning. on_epoch_end()
    reshuffles.
    """

    def __init__(self, dataset, config, shuffle=True, augmentation=None,
                 random_rois=0, no_augmentation_sources=None, steps=None,
                 workers=1, use_multiprocessing=False, max_queue_size=10,
                 seed=None):
        if use_multiprocessing:
            logger.warning("MaskRCNNDataset uses threads: TensorFlow "
                           "deadlocks in forked processes. Ignoring "
                           "use_multiprocessing=True.")
        super().__init__(workers=workers, use_multiprocessing=False,
                         max_queue_size=max_queue_size)
        self.dataset = dataset
        self.config = config
        self.shuffle = shuffle
        self.augmentation = augmentation
        self.random_rois = int(random_rois or 0)
        self.no_augmentation_sources = set(no_augmentation_sources or [])
        self.steps = steps
        self.image_ids = np.asarray(dataset.image_ids)
        if len(self.image_ids) == 0:
            raise ValueError("MaskRCNNDataset: the dataset has no images (did "
                             "you call dataset.prepare()?)")
        self.seed = (int(np.random.randint(0, 2 ** 31 - 1)) if seed is None
                     else int(seed))
        self.anchors, self._index = _training_anchors(config)
        # (epoch, image order), replaced as a whole so a worker thread never
        # mixes the epoch number of one with the order of another.
        self._epoch_state = (0, self._epoch_order(0))
        self._warned = set()
        self._batch_image_ids = {}

    def _epoch_order(self, epoch):
        if not self.shuffle:
            return self.image_ids.copy()
        return np.random.default_rng([self.seed, epoch]).permutation(
            self.image_ids)

    def __len__(self):
        if self.steps:
            return int(self.steps)
        return int(math.ceil(len(self.image_ids) / self.config.BATCH_SIZE))

    @property
    def epoch(self):
        """Number of on_epoch_end() calls so far."""
        return self._epoch_state[0]

    def on_epoch_end(self):
        dropped.log_epoch(self.dataset, self.epoch + 1)
        epoch = self.epoch + 1
        self._epoch_state = (epoch, self._epoch_order(epoch))

    def image_ids_of_batch(self, idx):
        """Image ids of the last build of batch idx (None if not built)."""
        return self._batch_image_ids.get(idx)

    def _augmenter_for(self, image_id, rng):
        """A private, seeded copy of the augmenter (threads share none)."""
        if self.augmentation is None:
            return None
        if self.dataset.image_info[image_id]["source"] \
                in self.no_augmentation_sources:
            return None
        return seeded_copy(self.augmentation,
                           int(rng.integers(0, 2 ** 31 - 1)))

    def _next_sample(self, order, position, rng):
        """The first image with instances from order[position] on.

        Returns (position used, image_id, sample).
        """
        for step in range(len(order)):
            image_id = order[(position + step) % len(order)]
            sample = _training_sample(
                self.dataset, self.config, image_id, self.anchors, self._index,
                rng, augmentation=self._augmenter_for(image_id, rng),
                random_rois=self.random_rois)
            if sample is not None:
                return position + step, image_id, sample
            if image_id not in self._warned:
                self._warned.add(image_id)
                logger.warning("Skipping %s: it has no instances",
                               describe_image(self.dataset, image_id))
        raise ValueError(
            "MaskRCNNDataset: none of the {} images of the dataset has "
            "instances to train on".format(len(order)))

    def __getitem__(self, idx):
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError("batch {} out of range for {} batches".format(
                idx, len(self)))
        epoch, order = self._epoch_state
        batch_size = self.config.BATCH_SIZE
        position = idx * batch_size
        samples, image_ids = [], []
        for slot in range(batch_size):
            rng = np.random.default_rng([self.seed, epoch, idx, slot])
            position, image_id, sample = self._next_sample(order, position,
                                                           rng)
            position += 1  # the next slot starts after the image used
            samples.append(_cap_instances(
                sample, self.config.MAX_GT_INSTANCES, rng,
                describe_image(self.dataset, image_id)))
            image_ids.append(int(image_id))
        self._batch_image_ids[idx] = image_ids
        return self._batch_dict(samples)

    def _batch_dict(self, samples):
        config = self.config
        expected = tuple(int(d) for d in config.IMAGE_SHAPE[:2])
        for sample in samples:
            if sample["image"].shape[:2] != expected:
                raise ValueError(
                    "image {} was resized to {} but the anchors are for "
                    "IMAGE_SHAPE {}; use IMAGE_RESIZE_MODE 'square' or 'crop'"
                    .format(int(sample["image_meta"][0]),
                            sample["image"].shape[:2], expected))
        max_gt = config.MAX_GT_INSTANCES
        mask_hw = list(samples[0]["gt_masks"].shape[:2])
        batch = {
            "input_image": np.stack(
                [mold_image(s["image"], config) for s in samples]),
            "input_image_meta": np.stack(
                [s["image_meta"] for s in samples]).astype(np.float32),
            "input_rpn_match": np.stack(
                [s["rpn_match"] for s in samples])[:, :, np.newaxis],
            "input_rpn_bbox": np.stack([s["rpn_bbox"] for s in samples]),
            "input_gt_class_ids": _pad_instances(
                samples, "gt_class_ids", [max_gt], np.int32, 0),
            "input_gt_boxes": _pad_instances(
                samples, "gt_boxes", [max_gt, 4], np.float32, 0),
            "input_gt_masks": _pad_instances(
                samples, "gt_masks", mask_hw + [max_gt], bool, -1),
        }
        if self.random_rois:
            batch["input_rois"] = np.stack(
                [s["rpn_rois"] for s in samples]).astype(np.int32)
        return batch


# The name used by earlier drafts of this port.
DataSequence = MaskRCNNDataset
