"""Numpy instance-mask helpers: mask IoU, mini masks, network masks.

Instance masks are ``[height, width, num_instances]`` arrays; boxes are
``(y1, x1, y2, x2)`` pixels, exclusive at the end.
"""

import numpy as np

from mrcnn.structures.boxes import _safe_divide, extract_bboxes
from mrcnn.structures.resizing import resize

# Mask probabilities at or above this are part of the instance, wherever a
# mask head's output is pasted (unmold_mask, the inference postprocessing
# and the exported graph).
MASK_THRESHOLD = 0.5


def compute_overlaps_masks(masks1, masks2):
    """IoU of every mask of masks1 against every mask of masks2.

    masks1: [height, width, N1], masks2: [height, width, N2]. Values above
        0.5 count as inside the mask.
    Returns: [N1, N2] IoU matrix (all zeros, of that shape, when either set
    is empty).
    """
    masks1 = np.asarray(masks1)
    masks2 = np.asarray(masks2)
    n1, n2 = masks1.shape[-1], masks2.shape[-1]
    if n1 == 0 or n2 == 0:
        return np.zeros((n1, n2))
    if masks1.shape[:-1] != masks2.shape[:-1]:
        raise ValueError("compute_overlaps_masks: mask sizes differ: {} vs {}"
                         .format(masks1.shape[:-1], masks2.shape[:-1]))
    flat1 = (masks1.reshape(-1, n1) > .5).astype(np.float32)
    flat2 = (masks2.reshape(-1, n2) > .5).astype(np.float32)
    area1 = flat1.sum(axis=0)
    area2 = flat2.sum(axis=0)
    intersections = flat1.T @ flat2
    union = area1[:, None] + area2[None, :] - intersections
    return _safe_divide(intersections, union)


def minimize_mask(bbox, mask, mini_shape):
    """Crops each mask to its box and resizes it to mini_shape.

    Mini masks save memory during training; expand_mask reverses this.
    bbox: [N, (y1, x1, y2, x2)] pixel boxes, e.g. from extract_bboxes.
    mask: [height, width, N].
    mini_shape: (height, width) of the mini masks.
    Returns: bool [mini_height, mini_width, N].
    Raises ValueError for a box of zero area (an instance with no pixels),
    naming the instance.
    """
    mini_shape = tuple(int(d) for d in mini_shape)
    mini_mask = np.zeros(mini_shape + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = (int(v) for v in bbox[i][:4])
        cropped = mask[y1:y2, x1:x2, i]
        if cropped.size == 0:
            raise ValueError(
                "minimize_mask: instance {} has a box of zero area {}; drop "
                "empty instances before minimizing masks"
                .format(i, (y1, x1, y2, x2)))
        mini_mask[:, :, i] = minimize_one(cropped, mini_shape)
    return mini_mask


def minimize_one(cropped, mini_shape):
    """One instance's mask cropped to its box [h, w] (h, w >= 1), resized
    to mini_shape (height, width): bool, pixels at >= 0.5 after bilinear
    resizing."""
    small = resize(cropped.astype(np.float32), mini_shape)
    return np.around(small).astype(bool)


def expand_mask(bbox, mini_mask, image_shape):
    """Pastes mini masks back at their boxes in full-size masks.

    The inverse of minimize_mask.
    bbox: [N, (y1, x1, y2, x2)] pixel boxes.
    mini_mask: [mini_height, mini_width, N].
    image_shape: (height, width, ...) of the full image.
    Returns: bool [height, width, N]. An instance whose box has zero area
    gets an empty mask.
    """
    num_instances = mini_mask.shape[-1]
    mask = np.zeros(tuple(int(d) for d in image_shape[:2]) + (num_instances,),
                    dtype=bool)
    for i in range(num_instances):
        y1, x1, y2, x2 = (int(v) for v in bbox[i][:4])
        if y2 <= y1 or x2 <= x1:
            continue
        full = resize(mini_mask[:, :, i].astype(np.float32),
                      (y2 - y1, x2 - x1))
        mask[y1:y2, x1:x2, i] = np.around(full).astype(bool)
    return mask


def unmold_mask(mask, bbox, image_shape):
    """Turns a network mask into a full-image bool mask.

    mask: [height, width] float mask from the mask head (e.g. 28x28).
    bbox: (y1, x1, y2, x2) pixel box the mask belongs to.
    image_shape: (height, width, ...) of the image.
    Returns: bool [height, width]; pixels with mask value >= MASK_THRESHOLD
    (0.5) are set.
    A box of zero area gives an empty mask.
    """
    y1, x1, y2, x2 = (int(v) for v in bbox[:4])
    full_mask = np.zeros(tuple(int(d) for d in image_shape[:2]), dtype=bool)
    if y2 <= y1 or x2 <= x1:
        return full_mask
    resized = resize(np.asarray(mask, dtype=np.float32), (y2 - y1, x2 - x1))
    full_mask[y1:y2, x1:x2] = resized >= MASK_THRESHOLD
    return full_mask


def mold_mask(mask, config):
    """Full-size instance masks in the form the training graph is fed.

    matterport declared this function without implementing it; here it
    does what load_image_gt does to the masks of an image.
    mask: [height, width, N] bool (or 0/1) full-image masks.
    config: its USE_MINI_MASK and MINI_MASK_SHAPE are used.
    Returns: with USE_MINI_MASK, bool [MINI_MASK_SHAPE[0], MINI_MASK_SHAPE[1],
    N], each mask cropped to its box (extract_bboxes) and resized, which
    expand_mask(extract_bboxes(mask), ..., mask.shape) undoes up to the
    resolution of the mini mask; otherwise the masks as bool
    [height, width, N].
    Raises ValueError naming the instance when, with USE_MINI_MASK, a mask
    is empty (it has no box to crop to).
    """
    mask = np.asarray(mask).astype(bool)
    if not config.USE_MINI_MASK:
        return mask
    return minimize_mask(extract_bboxes(mask), mask, config.MINI_MASK_SHAPE)
