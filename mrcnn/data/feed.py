"""The training feed: one image's sample and ``MaskRCNNDataset``.

``MaskRCNNDataset`` (alias ``DataSequence``) is a thread-safe
``keras.utils.PyDataset`` giving one dict of model inputs per batch,
reproducible per (epoch, batch index) given a seed, built by threads or
by spawned worker processes (``use_multiprocessing=True``,
mrcnn.data.workers) with the same result.
"""

from concurrent.futures.process import BrokenProcessPool
import logging
import math
import threading

import numpy as np
import keras

from mrcnn.structures.anchors import generate_pyramid_anchors
from mrcnn.structures import dropped
from mrcnn.data.anchor_index import _AnchorIndex
from mrcnn.data.augment import seeded_copy
from mrcnn.data.detection_targets import (build_detection_targets,
                                          generate_random_rois)
from mrcnn.data.loading import describe_image, load_image_gt
from mrcnn.data.meta import compute_backbone_shapes
from mrcnn.data.rpn_targets import _rpn_targets
from mrcnn.data import workers

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


# Candidate images a worker task tries for one batch slot before it hands
# the slot back (images without instances are rare: usually one is used).
CANDIDATES_PER_TASK = 4


class _SampleMaker:
    """Builds batch slots: the first image with instances among candidate
    image ids, its sample (see _training_sample) capped at
    MAX_GT_INSTANCES. Runs in the feed's process (threads) or, pickled,
    in its worker processes (mrcnn.data.workers)."""

    def __init__(self, dataset, config, augmentation=None, random_rois=0,
                 no_augmentation_sources=()):
        self.dataset = dataset
        self.config = config
        self.augmentation = augmentation
        self.random_rois = int(random_rois or 0)
        self.no_augmentation_sources = set(no_augmentation_sources or ())
        self._setup()

    def _setup(self):
        self.anchors, self.index = _training_anchors(self.config)
        self._warned = set()
        self.current_image_id = None

    def __getstate__(self):
        # The anchors (8 MB at 1024 px) are rebuilt by each worker.
        state = dict(self.__dict__)
        for key in ("anchors", "index", "_warned", "current_image_id"):
            state.pop(key)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._setup()

    def spawned_objects(self):
        """What a worker process must be able to import to unpickle."""
        return [self.dataset, self.config, self.augmentation]

    def describe(self, image_id):
        if image_id is None:
            return "no image"
        return describe_image(self.dataset, image_id)

    def take_drop_counts(self):
        """This process's drop counts since the last call (then reset)."""
        return dropped.take_epoch_pairs(self.dataset)

    def _augmenter_for(self, image_id, rng):
        """A private, seeded copy of the augmenter (threads share none)."""
        if self.augmentation is None:
            return None
        if self.dataset.image_info[image_id]["source"] \
                in self.no_augmentation_sources:
            return None
        return seeded_copy(self.augmentation,
                           int(rng.integers(0, 2 ** 31 - 1)))

    def slot(self, candidates, rng):
        """(offset in candidates, image_id, sample) of the first candidate
        with instances, or None when none has any; rng is advanced."""
        for offset, image_id in enumerate(candidates):
            image_id = int(image_id)
            self.current_image_id = image_id
            sample = _training_sample(
                self.dataset, self.config, image_id, self.anchors,
                self.index, rng,
                augmentation=self._augmenter_for(image_id, rng),
                random_rois=self.random_rois)
            if sample is not None:
                return offset, image_id, _cap_instances(
                    sample, self.config.MAX_GT_INSTANCES, rng,
                    describe_image(self.dataset, image_id))
            if image_id not in self._warned:
                self._warned.add(image_id)
                logger.warning("Skipping %s: it has no instances",
                               describe_image(self.dataset, image_id))
        return None


class _InProcessTask:
    """A slot built in this process when its result is asked for (the
    feed's threads are the parallelism); the interface of a worker's
    future."""

    def __init__(self, maker, candidates, rng):
        self._call = (maker, candidates, rng)

    def result(self):
        maker, candidates, rng = self._call
        return maker.slot(candidates, rng), rng, [], None

    def cancel(self):
        return True


def _molded_images(samples, config):
    """np.stack of mold_image of each sample's image, [B, H, W, C]
    float32, in one pass (no temporaries: this runs in the feed's main
    process, beside its workers)."""
    first = samples[0]["image"]
    out = np.empty((len(samples),) + first.shape, dtype=np.float32)
    mean = np.asarray(config.MEAN_PIXEL, dtype=np.float32)
    for b, sample in enumerate(samples):
        np.subtract(sample["image"], mean, out=out[b], dtype=np.float32)
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
    built in any order, by ``workers`` threads or, with
    ``use_multiprocessing=True``, by ``workers`` spawned processes
    (mrcnn.data.workers; forked processes deadlock TensorFlow), and are
    the same either way. Processes scale with cores; threads share about
    one (decoding, resizing and augmentation hold Python's lock). The
    dataset, config and augmentation must then be picklable and
    importable (not defined in a notebook). Batches are prefetched
    (``max_queue_size``). Images without instances are skipped (the next
    image is used) with a warning. on_epoch_end() reshuffles; close()
    ends the worker processes.
    """

    def __init__(self, dataset, config, shuffle=True, augmentation=None,
                 random_rois=0, no_augmentation_sources=None, steps=None,
                 workers=1, use_multiprocessing=False, max_queue_size=10,
                 seed=None):
        self.process_workers = int(workers) if use_multiprocessing else 0
        # Keras' threads only wait for the processes in that case: one
        # more than the processes keeps each of them busy.
        super().__init__(workers=(workers + 1 if use_multiprocessing
                                  else workers),
                         use_multiprocessing=False,
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
        self._maker = _SampleMaker(dataset, config, augmentation,
                                   self.random_rois, no_augmentation_sources)
        self.anchors = self._maker.anchors
        self._pool = None
        self._pool_lock = threading.Lock()
        # (epoch, image order), replaced as a whole so a worker thread never
        # mixes the epoch number of one with the order of another.
        self._epoch_state = (0, self._epoch_order(0))
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

    def worker_pool(self):
        """The pool of worker processes (started on first use), or None
        with threads."""
        if not self.process_workers:
            return None
        with self._pool_lock:
            if self._pool is None:
                self._pool = workers.SamplePool(self._maker,
                                                self.process_workers)
            return self._pool

    def close(self):
        """Ends the worker processes (a later batch starts new ones)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _submit(self, order, position, step, rng):
        """Starts trying order[position + step:] (wrapping) for a slot."""
        stop = min(step + CANDIDATES_PER_TASK, len(order))
        candidates = np.take(order, np.arange(position + step,
                                              position + stop), mode="wrap")
        pool = self.worker_pool()
        if pool is None:
            return _InProcessTask(self._maker, candidates, rng)
        return pool.submit(candidates, rng)

    def _finish_slot(self, order, position, task, idx):
        """Waits for a slot started at position, going on with the next
        candidates while none has instances. Returns (position used,
        image_id, sample)."""
        step = 0
        while True:
            try:
                result, rng, records, drops = task.result()
            except BrokenProcessPool as error:
                self.close()  # the next batch starts new workers
                raise workers.FeedWorkerError(
                    "A data worker process ended while building batch {} "
                    "from {} on (killed, or out of memory?)".format(
                        idx, describe_image(self.dataset,
                                            order[position % len(order)]))
                ) from error
            workers.merge_logs(records)
            if drops:
                dropped.add_epoch_pairs(self.dataset, drops)
            if result is not None:
                offset, image_id, sample = result
                return position + step + offset, image_id, sample
            step += CANDIDATES_PER_TASK
            if step >= len(order):
                raise ValueError(
                    "MaskRCNNDataset: none of the {} images of the dataset "
                    "has instances to train on".format(len(order)))
            task = self._submit(order, position, step, rng)

    def __getitem__(self, idx):
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError("batch {} out of range for {} batches".format(
                idx, len(self)))
        epoch, order = self._epoch_state
        batch_size = self.config.BATCH_SIZE

        def slot_rng(slot):
            return np.random.default_rng([self.seed, epoch, idx, slot])

        # Every slot starts at once at the image it uses when no image
        # before it is skipped; a slot after a skip starts again later.
        position = idx * batch_size
        tasks = [self._submit(order, position + slot, 0, slot_rng(slot))
                 for slot in range(batch_size)]
        samples, image_ids = [], []
        for slot in range(batch_size):
            if idx * batch_size + slot != position:
                tasks[slot].cancel()
                tasks[slot] = self._submit(order, position, 0, slot_rng(slot))
            used, image_id, sample = self._finish_slot(order, position,
                                                       tasks[slot], idx)
            position = used + 1  # the next slot starts after the image used
            samples.append(sample)
            image_ids.append(image_id)
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
            "input_image": _molded_images(samples, config),
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
