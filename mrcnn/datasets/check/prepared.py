"""check_dataset: read every image and mask of a prepared Dataset."""

import hashlib
import os

import numpy as np

from mrcnn.structures import dropped
from mrcnn.structures import orientation
from mrcnn.datasets.check.problem import ERROR, WARNING, Problem

def check_dataset(dataset, config=None):
    """Read every image and mask of a prepared Dataset; list the problems.

    Errors: unreadable or missing images, images that are not [H, W, 3],
    image_info sizes that differ from the file, masks that fail to load,
    masks whose size differs from the image, mask/class-id count mismatch,
    class ids 0 or out of range, the same file listed twice. Warnings:
    images with no instances, identical image files under two names,
    non-bool masks, EXIF-tagged photos used in their stored frame, and the
    instances training drops (Problem.cause and .count; mrcnn.structures.dropped):
    empty masks from load_mask, loader shapes outside the image or without
    area, and with a config, instances that resizing to its input empties.
    """
    if not hasattr(dataset, "class_from_source_map"):
        return [Problem(ERROR, type(dataset).__name__,
                        "dataset is not prepared: call prepare() first")]
    problems = []
    name = type(dataset).__name__
    if dataset.num_images == 0:
        problems.append(Problem(ERROR, name, "dataset has no images"))
    if dataset.num_classes < 2:
        problems.append(Problem(ERROR, name,
                                "dataset has no classes besides BG"))
    seen = {"paths": {}, "hashes": {}}
    # The drops are reported here, as problems, rather than logged.
    with dropped.captured(dataset) as capture:
        for image_id in dataset.image_ids:
            problems += _check_one_image(dataset, image_id, seen)
            if config is not None:
                capture.update(_resize_drops(dataset, config, image_id))
            problems += _dropped_problems(dataset, image_id, capture)
    return problems


def _resize_drops(dataset, config, image_id):
    """{(cause, image_id): instances} that resizing to config's input
    drops, found by running the training feed's loading. (Its other drops
    are found by the checks already; whatever it raises, too.)"""
    from mrcnn import data  # TensorFlow: only when a config is given
    with dropped.captured(dataset) as capture:
        try:
            data.load_image_gt(dataset, config, image_id)
        except Exception:  # noqa: BLE001 - reported by _check_one_image
            pass
    return {key: count for key, count in capture.items()
            if key[0] == "empty_after_resize"}


def _dropped_problems(dataset, image_id, capture):
    """Problems for the instances of image_id dropped while checking it."""
    where = describe_image(dataset, image_id)
    problems = []
    for (cause, dropped_id), count in sorted(capture.items()):
        # Empty masks of load_mask are reported instance by instance.
        if dropped_id == int(image_id) and cause != "empty_in_load_mask":
            problems.append(Problem(
                WARNING, where, "{} instance{} dropped in training: {}"
                .format(count, "" if count == 1 else "s",
                        dropped.CAUSES[cause]), cause=cause, count=count))
    return problems


def describe_image(dataset, image_id):
    """The file path of an image, else its image_reference, else its id."""
    info = dataset.image_info[image_id]
    path = info.get("path")
    if isinstance(path, (str, os.PathLike)) and os.fspath(path):
        return os.path.normpath(os.fspath(path))
    try:
        reference = dataset.image_reference(image_id)
    except Exception:  # noqa: BLE001 - a broken override must not stop us
        reference = None
    return str(reference or "image {} (id {!r})".format(image_id,
                                                         info.get("id")))


def _check_one_image(dataset, image_id, seen):
    where = describe_image(dataset, image_id)
    problems = []

    def report(severity, message, cause=None):
        problems.append(Problem(severity, where, message, cause=cause,
                                count=1 if cause else 0))

    path = dataset.image_info[image_id].get("path")
    _check_duplicate_path(path, image_id, seen, report)
    try:
        image = dataset.load_image(image_id)
    except Exception as error:  # noqa: BLE001
        report(ERROR, "cannot read image: {}".format(error))
        return problems
    _check_image_array(dataset, image_id, image, report)
    _check_orientation(dataset, path, report)
    _check_duplicate_content(path, image, image_id, seen, report)
    try:
        mask, class_ids = dataset.load_mask(image_id)
    except Exception as error:  # noqa: BLE001
        report(ERROR, "cannot load masks: {}".format(error))
        return problems
    _check_masks(dataset, image, mask, class_ids, report)
    return problems


def _check_duplicate_path(path, image_id, seen, report):
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        return
    key = os.path.abspath(os.fspath(path))
    if key in seen["paths"]:
        report(ERROR, "the same image file is listed twice (images {} and "
                      "{}): its annotations are split".format(
                          seen["paths"][key], image_id))
    else:
        seen["paths"][key] = image_id


def _check_duplicate_content(path, image, image_id, seen, report):
    if isinstance(path, (str, os.PathLike)) and os.path.isfile(path):
        with open(path, "rb") as f:
            digest = hashlib.sha1(f.read()).hexdigest()
    else:
        digest = hashlib.sha1(np.ascontiguousarray(image).tobytes()) \
            .hexdigest()
    first = seen["hashes"].setdefault(digest, (image_id, path))
    if first[0] != image_id and os.path.abspath(os.fspath(first[1] or "")) \
            != os.path.abspath(os.fspath(path or "")):
        report(WARNING, "identical to image {} ({})".format(first[0],
                                                            first[1]))


def _check_orientation(dataset, path, report):
    if dataset.apply_exif_orientation or \
            not isinstance(path, (str, os.PathLike)) \
            or not os.path.isfile(path):
        return
    tag = orientation.exif_orientation(path)
    if tag != 1:
        report(WARNING, "EXIF orientation {} is not applied: pixels and "
                        "annotations are in the stored frame (set "
                        "apply_exif_orientation if they were drawn on the "
                        "upright view)".format(tag))


def _check_image_array(dataset, image_id, image, report):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        report(ERROR, "load_image gave shape {}; expected [height, width, 3]"
               .format(list(image.shape)))
    elif image.dtype != np.uint8:
        report(WARNING, "load_image gave dtype {}; expected uint8".format(
            image.dtype))
    info = dataset.image_info[image_id]
    size = (info.get("height"), info.get("width"))
    if None not in size and tuple(image.shape[:2]) != tuple(size):
        report(ERROR, "image_info says {}x{} (height x width) but the image "
                      "is {}x{}".format(size[0], size[1], *image.shape[:2]))


def _check_masks(dataset, image, mask, class_ids, report):
    mask, class_ids = np.asarray(mask), np.asarray(class_ids)
    if mask.ndim != 3:
        report(ERROR, "load_mask gave masks of shape {}; expected "
                      "[height, width, instances]".format(list(mask.shape)))
        return
    if class_ids.ndim != 1 or len(class_ids) != mask.shape[2]:
        report(ERROR, "{} masks but {} class ids".format(
            mask.shape[2], class_ids.size))
        return
    if tuple(mask.shape[:2]) != tuple(np.shape(image)[:2]):
        report(ERROR, "masks are {}x{} but the image is {}x{}".format(
            mask.shape[0], mask.shape[1], *np.shape(image)[:2]))
    if mask.dtype != bool:
        values = np.unique(mask)
        severity = WARNING if set(values.tolist()) <= {0, 1} else ERROR
        report(severity, "masks have dtype {} (values {}); expected bool"
               .format(mask.dtype, values[:5].tolist()))
    if mask.shape[2] == 0:
        report(WARNING, "no instances")
    _check_instances(dataset, mask, class_ids, report)


def _check_instances(dataset, mask, class_ids, report):
    if class_ids.size and class_ids.dtype.kind not in "iu":
        report(ERROR, "class ids have dtype {}; expected integers".format(
            class_ids.dtype))
        return
    pixels = mask.astype(bool).sum(axis=(0, 1))
    for index, (class_id, count) in enumerate(zip(class_ids, pixels)):
        # Negative ids mark crowd regions (COCO), so the range is on |id|.
        if class_id == 0 or abs(int(class_id)) >= dataset.num_classes:
            report(ERROR, "instance {}: class id {} is out of range "
                          "1..{}".format(index, class_id,
                                         dataset.num_classes - 1))
        elif count == 0:
            report(WARNING, "instance {} ({}): empty mask (dropped in "
                            "training)".format(
                                index, dataset.class_names[abs(int(class_id))]),
                   cause="empty_in_load_mask")
