"""Instances dropped on the way to training, named and counted.

An instance that cannot train (its mask has no pixel) is dropped, never
silently: the first time an image loses instances for a cause, one warning
names the image (internal id, source id, file), how many instances and
why; later drops of that image for that cause are counted only, and each
epoch of the training feed ends with one line of counts per cause
(:func:`log_epoch`). ``mrcnn check-dataset`` reports the same causes.

Causes (keys of :data:`CAUSES`):

* ``empty_in_load_mask``: the dataset's ``load_mask()`` returned a mask
  with no pixel;
* ``empty_after_resize``: resizing to the model's input (``IMAGE_MIN_DIM``
  / ``IMAGE_MAX_DIM`` / crop) left no pixel of the mask;
* ``empty_after_augmentation``: the augmenter moved or cropped the mask out
  of the image;
* ``outside_image``: a VIA / LabelMe / COCO shape lies wholly outside its
  image;
* ``no_area``: a shape not wholly outside the image covers no pixel of it
  (fewer than 3 polygon points, no width or height, too thin);
* ``empty_mask_file``: a mask image of a masks folder has no foreground
  pixel;
* ``unknown_category``: a COCO annotation's ``category_id`` is not among
  the file's categories.

The records live with each dataset object (a new dataset starts clean),
and are thread-safe: the training feed builds batches in worker threads.
"""

import collections
import contextlib
import logging
import os
import threading
import weakref

import numpy as np

logger = logging.getLogger(__name__)

CAUSES = {
    "empty_in_load_mask": "their mask from load_mask() is empty",
    "empty_after_resize": "their mask is empty after resizing to the "
                          "model's input size",
    "empty_after_augmentation": "their mask is empty after augmentation "
                                "(moved or cropped out of the image)",
    "outside_image": "their shape lies wholly outside the image",
    "no_area": "their shape covers no pixel of the image (fewer than 3 "
               "polygon points, no width or height, or too thin)",
    "empty_mask_file": "their mask image has no foreground pixel",
    "unknown_category": "their COCO category_id is not among the file's "
                        "categories",
}


class _Record:
    """What one dataset dropped: warned (image, cause) pairs, this epoch's
    counts, and the captures of check-dataset in progress."""

    def __init__(self):
        self.warned = set()
        self.epoch = collections.Counter()  # (cause, image_id) -> instances
        self.captures = []


_lock = threading.Lock()
_records = weakref.WeakKeyDictionary()  # dataset -> _Record
_unweakable = {}  # id(dataset) -> _Record, for datasets without weakrefs


def _record(dataset):
    """The dataset's record (created on first use); call under _lock."""
    try:
        return _records.setdefault(dataset, _Record())
    except TypeError:  # unhashable or without __weakref__
        return _unweakable.setdefault(id(dataset), _Record())


def describe(dataset, image_id):
    """'image 3 (id 'a.jpg' of source 'via', /data/a.jpg)'."""
    try:
        info = dataset.image_info[image_id]
    except Exception:  # a broken image_info must not hide the drop
        return "image {}".format(image_id)
    where = info.get("path")
    if not isinstance(where, (str, os.PathLike)) or not os.fspath(where):
        try:
            where = dataset.image_reference(image_id) or "no file"
        except Exception:  # a broken override must not hide the drop
            where = "no file"
    return "image {} (id {!r} of source {!r}, {})".format(
        image_id, info.get("id"), info.get("source"), os.fspath(where))


def report(dataset, image_id, cause, count, total=None):
    """Records that ``count`` instances of an image were dropped for
    ``cause`` (a key of CAUSES); warns the first time per image and cause.

    total: the instances the image had before, for the message.
    """
    if cause not in CAUSES:
        raise ValueError("unknown drop cause {!r}; expected one of {}".format(
            cause, ", ".join(CAUSES)))
    if count <= 0:
        return
    image_id = int(image_id)
    with _lock:
        record = _record(dataset)
        if record.captures:  # check-dataset reports them itself
            record.captures[-1][(cause, image_id)] += count
            return
        record.epoch[(cause, image_id)] += count
        first = (image_id, cause) not in record.warned
        record.warned.add((image_id, cause))
    if first:
        logger.warning(
            "Dropped %s of %s: %s. Later drops of this image for this cause "
            "are only counted in the epoch summary.",
            _instances(count, total), describe(dataset, image_id),
            CAUSES[cause])


def _instances(count, total):
    """'1 instance', '2 of the 5 instances'."""
    if total is None:
        return "{} instance{}".format(count, "" if count == 1 else "s")
    return "{} of the {} instance{}".format(count, total,
                                            "" if total == 1 else "s")


def drop_empty(dataset, image_id, mask, class_ids, cause):
    """Drops the instances whose mask has no pixel, reporting them.

    mask: [H, W, N] bool; class_ids: [N]. Returns (mask, class_ids) of the
    instances left.
    """
    # Rows first: numpy reduces the first axis many times faster than the
    # middle one (see boxes._any_along_width).
    present = np.asarray(mask).any(axis=0).any(axis=0)
    if present.all():
        return mask, class_ids
    report(dataset, image_id, cause, int((~present).sum()), len(present))
    return mask[:, :, present], class_ids[present]


def epoch_counts(dataset, reset=True):
    """{cause: (instances, images)} dropped since the last reset."""
    with _lock:
        record = _record(dataset)
        pairs = dict(record.epoch)
        if reset:
            record.epoch.clear()
    return _by_cause(pairs)


def take_epoch_pairs(dataset):
    """{(cause, image_id): instances} dropped since the last reset, then
    reset: what a worker process of the feed hands back to its parent."""
    with _lock:
        record = _record(dataset)
        pairs = dict(record.epoch)
        record.epoch.clear()
    return pairs


def add_epoch_pairs(dataset, pairs):
    """Adds take_epoch_pairs() of a worker process to this epoch's counts
    (the worker warned about them already)."""
    with _lock:
        record = _record(dataset)
        record.epoch.update(pairs)
        record.warned.update((image_id, cause) for cause, image_id in pairs)


def _by_cause(pairs):
    """{(cause, image_id): instances} -> {cause: (instances, images)}."""
    counts = {}
    for (cause, _), instances in pairs.items():
        total, images = counts.get(cause, (0, 0))
        counts[cause] = (total + instances, images + 1)
    return counts


def summary(counts):
    """'7 instances of 3 images: 5 empty_after_augmentation (2 images), ...'
    from epoch_counts(); '' when nothing was dropped."""
    if not counts:
        return ""
    parts = ["{} {} ({} image{})".format(instances, cause, images,
                                         "" if images == 1 else "s")
             for cause, (instances, images) in sorted(counts.items())]
    return "{} instances: {}".format(sum(n for n, _ in counts.values()),
                                     ", ".join(parts))


def log_epoch(dataset, epoch=None):
    """Logs (warning) this epoch's drops of dataset, then starts counting
    the next epoch. Nothing is logged when nothing was dropped."""
    text = summary(epoch_counts(dataset))
    if text:
        logger.warning("%sdropped %s", "Epoch {}: ".format(epoch)
                       if epoch is not None else "", text)


@contextlib.contextmanager
def captured(dataset):
    """Within the block, drops of dataset are collected, not logged nor
    counted for the epoch. Yields a Counter {(cause, image_id): instances}
    that fills as they happen (what check-dataset reports)."""
    capture = collections.Counter()
    with _lock:
        _record(dataset).captures.append(capture)
    try:
        yield capture
    finally:
        with _lock:
            record = _record(dataset)
            record.captures = [c for c in record.captures
                               if c is not capture]
