"""Instance masks packed into label layers: the training feed's fast form.

``load_mask`` gives ``[H, W, N]`` bool masks, N values a pixel. Every pass
over them (resizing, warping by the augmentation, boxes, mini masks) costs
N times a pass over the image: at 1024x1024 with 30 instances, 31 MB each
time, and imgaug warps the N channels one by one. Packed, the instances
are a few int32 label images ``[H, W, L]``: instance i is the pixels equal
to ``i + 1`` in its layer ``layer_of[i]``, and instances that overlap go
to different layers, so nothing is lost (most data sets need one layer).
A label image is resized and warped like a segmentation map, by nearest
neighbour, and its boxes come from one pass of
``scipy.ndimage.find_objects``.

    layers, layer_of = pack(mask)
    ... resize / augment layers ...
    boxes, present = boxes_of(layers, layer_of)
    mini = minimize(layers, layer_of, boxes, (56, 56))   # or unpack(...)
"""

import numpy as np
import scipy.ndimage

from mrcnn.structures.boxes import extract_bboxes
from mrcnn.structures.masks import minimize_one


def pack(mask):
    """Label layers of bool masks [H, W, N] (no instance empty).

    Returns (layers [H, W, L] int32 with instance i's pixels equal to
    i + 1 in layer layer_of[i], 0 elsewhere; layer_of [N] int). Instances
    are placed in order, each in the first layer where none of its pixels
    is taken; L is at least 1.
    """
    height, width, count = mask.shape
    layers = [np.zeros((height, width), np.int32)]
    layer_of = np.zeros(count, np.intp)
    for i, (y1, x1, y2, x2) in enumerate(extract_bboxes(mask)):
        pixels = mask[y1:y2, x1:x2, i]
        for index, layer in enumerate(layers):
            window = layer[y1:y2, x1:x2]
            if not window[pixels].any():
                break
        else:
            index = len(layers)
            layers.append(np.zeros((height, width), np.int32))
            window = layers[index][y1:y2, x1:x2]
        window[pixels] = i + 1
        layer_of[i] = index
    if len(layers) == 1:  # the usual case: no copy
        return layers[0][:, :, np.newaxis], layer_of
    return np.stack(layers, axis=-1), layer_of


def boxes_of(layers, layer_of):
    """Boxes [N, (y1, x1, y2, x2)] int32 in pixels (y2, x2 one past the
    last pixel, as extract_bboxes) and present [N] bool: whether instance
    i has a pixel left. An absent instance's box is (0, 0, 0, 0)."""
    count = len(layer_of)
    boxes = np.zeros((count, 4), np.int32)
    present = np.zeros(count, bool)
    for index in range(layers.shape[-1]):
        slices = scipy.ndimage.find_objects(layers[..., index], count)
        for i in np.flatnonzero(layer_of == index):
            if slices[i] is not None:
                rows, cols = slices[i]
                boxes[i] = rows.start, cols.start, rows.stop, cols.stop
                present[i] = True
    return boxes, present


def _instance_window(layers, layer_of, box, i):
    """Instance i's bool mask within its box."""
    y1, x1, y2, x2 = box
    return layers[y1:y2, x1:x2, layer_of[i]] == i + 1


def unpack(layers, layer_of, boxes, keep):
    """Bool masks [H, W, K] of the instances i with keep[i], in order."""
    kept = np.flatnonzero(keep)
    mask = np.zeros(layers.shape[:2] + (len(kept),), bool)
    for k, i in enumerate(kept):
        y1, x1, y2, x2 = boxes[i]
        mask[y1:y2, x1:x2, k] = layers[y1:y2, x1:x2, layer_of[i]] == i + 1
    return mask


def minimize(layers, layer_of, boxes, keep, mini_shape):
    """Mini masks [mini_height, mini_width, K] of the instances i with
    keep[i] (each cropped to its box and resized, as minimize_mask)."""
    kept = np.flatnonzero(keep)
    mini_shape = tuple(int(d) for d in mini_shape)
    mini = np.zeros(mini_shape + (len(kept),), bool)
    for k, i in enumerate(kept):
        mini[:, :, k] = minimize_one(
            _instance_window(layers, layer_of, boxes[i], i), mini_shape)
    return mini
