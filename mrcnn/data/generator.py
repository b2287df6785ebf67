"""matterport's Python ``data_generator``: (inputs, outputs) lists."""

import logging

import numpy as np

from mrcnn.structures import dropped
from mrcnn.data.feed import (_cap_instances, _pad_instances, _training_anchors,
                             _training_sample)
from mrcnn.data.loading import describe_image
from mrcnn.data.meta import mold_image
from mrcnn.data.rng import _as_generator

logger = logging.getLogger(__name__)


def data_generator(dataset, config, shuffle=True, augment=False,
                   augmentation=None, random_rois=0, batch_size=1,
                   detection_targets=False, no_augmentation_sources=None):
    """A generator that returns images and corresponding target class ids,
    bounding box deltas, and masks (matterport's generator).

    dataset: the Dataset object to pick data from
    config: the model config object
    shuffle: if True, shuffles the samples before every epoch
    augment: (deprecated) random horizontal flips. Use augmentation instead.
    augmentation: optional imgaug augmenter or albumentations transform.
    random_rois: if > 0 then generate proposals to be used to train the
                 network classifier and mask heads.
    batch_size: how many images to return in each call
    detection_targets: if True, generate detection targets (class IDs, bbox
        deltas, and masks). Typically for debugging or visualizations.
    no_augmentation_sources: list of sources to exclude from augmentation.

    Yields (inputs, outputs), both lists:
    inputs: [images, image_meta, rpn_match [batch, anchors, 1], rpn_bbox,
        gt_class_ids, gt_boxes, gt_masks] (+ rpn_rois with random_rois,
        + rois with detection_targets).
    outputs: empty, or [mrcnn_class_ids [batch, rois, 1], mrcnn_bbox,
        mrcnn_mask] with detection_targets.
    Images without instances are skipped with a warning; ValueError if no
    image of the dataset has any.
    """
    image_ids = np.copy(dataset.image_ids)
    if len(image_ids) == 0:
        raise ValueError("data_generator: the dataset has no images (did you "
                         "call dataset.prepare()?)")
    no_augmentation_sources = no_augmentation_sources or []
    anchors, index = _training_anchors(config)
    image_index = -1
    error_count = 0
    skipped_in_a_row = 0
    warned = set()
    batch = []
    while True:
        image_index = (image_index + 1) % len(image_ids)
        if image_index == 0:
            dropped.log_epoch(dataset)  # the pass just finished, if any
        if shuffle and image_index == 0:
            np.random.shuffle(image_ids)
        image_id = image_ids[image_index]
        source = dataset.image_info[image_id]["source"]
        try:
            sample = _training_sample(
                dataset, config, image_id, anchors, index,
                _as_generator(None), augment=augment,
                augmentation=(None if source in no_augmentation_sources
                              else augmentation),
                random_rois=random_rois,
                detection_targets=detection_targets)
        except (GeneratorExit, KeyboardInterrupt):
            raise
        except Exception:
            logger.exception("Error processing %s",
                             describe_image(dataset, image_id))
            error_count += 1
            if error_count > 5:
                raise
            continue
        if sample is None:
            skipped_in_a_row += 1
            if image_id not in warned:
                warned.add(image_id)
                logger.warning("Skipping %s: it has no instances",
                               describe_image(dataset, image_id))
            if skipped_in_a_row >= len(image_ids):
                raise ValueError(
                    "data_generator: none of the {} images of the dataset "
                    "has instances to train on".format(len(image_ids)))
            continue
        skipped_in_a_row = 0
        batch.append(_cap_instances(sample, config.MAX_GT_INSTANCES,
                                    _as_generator(None),
                                    describe_image(dataset, image_id)))
        if len(batch) == batch_size:
            yield _generator_batch(batch, config, random_rois,
                                   detection_targets)
            batch = []


def _generator_batch(samples, config, random_rois, detection_targets):
    """matterport's (inputs, outputs) lists from a list of samples."""
    max_gt = config.MAX_GT_INSTANCES
    mask_hw = samples[0]["gt_masks"].shape[:2]
    inputs = [
        np.stack([mold_image(s["image"], config) for s in samples]),
        np.stack([s["image_meta"] for s in samples]),
        np.stack([s["rpn_match"] for s in samples])[:, :, np.newaxis],
        np.stack([s["rpn_bbox"] for s in samples]),
        _pad_instances(samples, "gt_class_ids", [max_gt], np.int32, 0),
        _pad_instances(samples, "gt_boxes", [max_gt, 4], np.int32, 0),
        _pad_instances(samples, "gt_masks", list(mask_hw) + [max_gt],
                       bool, -1),
    ]
    outputs = []
    if random_rois:
        inputs.append(np.stack([s["rpn_rois"] for s in samples]))
        if detection_targets:
            inputs.append(np.stack([s["rois"] for s in samples]))
            outputs = [
                np.stack([s["mrcnn_class_ids"] for s in samples])[..., None],
                np.stack([s["mrcnn_bbox"] for s in samples]),
                np.stack([s["mrcnn_mask"] for s in samples]),
            ]
    return inputs, outputs
