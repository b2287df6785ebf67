"""From network outputs to detections in original image coordinates.

The mask pasting here gives the same masks as ``unmold_mask`` (which
resizes each mask with skimage, one call per detection) without skimage:
skimage's order-1 resize with ``mode="constant"`` is separable linear
interpolation with a zero border (scipy.ndimage's "grid-constant" zoom), so
resizing a mask to its box is two small matrix products,
``rows @ mask @ columns.T``, computed in float64 like ndimage.
"""

import numpy as np

from mrcnn.structures.boxes import denorm_boxes, norm_boxes
from mrcnn.structures.masks import MASK_THRESHOLD, unmold_mask


def unmold_detections(detections, mrcnn_mask, original_image_shape,
                      image_shape, window):
    """Turns one image's detections into original-image coordinates.

    detections: [N, (y1, x1, y2, x2, class_id, score)] normalized, zero rows
        at the end are padding.
    mrcnn_mask: [M, height, width, num_classes] mask probabilities of every
        class, or [M, height, width] those of each detection's own class
        (as MaskRCNN._predict returns them). M >= the number of real
        detections: rows past them are ignored.
    original_image_shape: [H, W, C] before resizing.
    image_shape: [H, W, C] of the molded image.
    window: [y1, x1, y2, x2] pixels, the image inside the molded frame.
    Returns boxes [n, (y1, x1, y2, x2)] int pixels, class_ids [n] int32,
    scores [n] float32, masks [H, W, n] bool at the original size (a view
    of an [n, H, W] array, so that masks[..., i] is contiguous).
    """
    n = count_detections(detections)
    if mrcnn_mask.shape[0] < n:
        raise ValueError(
            "unmold_detections: {} detections but masks for only {}".format(
                n, mrcnn_mask.shape[0]))
    boxes = detections[:n, :4]
    class_ids = detections[:n, 4].astype(np.int32)
    scores = detections[:n, 5].astype(np.float32)
    if mrcnn_mask.ndim == 4:
        masks = mrcnn_mask[np.arange(n), :, :, class_ids]
    else:
        masks = mrcnn_mask[:n]

    boxes = boxes_to_original(boxes, original_image_shape, image_shape,
                              window)
    keep = np.where((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
                    > 0)[0]
    boxes, class_ids = boxes[keep], class_ids[keep]
    scores, masks = scores[keep], masks[keep]
    full_masks = paste_masks(masks, boxes, original_image_shape[:2])
    return boxes, class_ids, scores, full_masks


def detection_dicts(unmold, detections, mrcnn_mask, original_shapes,
                    molded_shapes, windows):
    """detect()'s list of dicts for a batch, one per image of
    original_shapes (rows of a padded batch past them are left out).

    unmold: unmold_detections or a function of its arguments
        (MaskRCNN.unmold_detections, which a subclass may override).
    detections, mrcnn_mask: the batch's [B, ...] arrays, as
        unmold_detections takes them one image at a time.
    original_shapes, molded_shapes: [H, W, C] of each image before and
        after molding; windows: [y1, x1, y2, x2] of each in its molded frame.
    Returns [{"rois", "class_ids", "scores", "masks"}] as detect().
    """
    results = []
    for i, (original, molded, window) in enumerate(
            zip(original_shapes, molded_shapes, windows)):
        rois, class_ids, scores, masks = unmold(
            detections[i], mrcnn_mask[i], original, molded, window)
        results.append({"rois": rois, "class_ids": class_ids,
                        "scores": scores, "masks": masks})
    return results


def count_detections(detections):
    """Real detections in a zero-padded [N, 6] detections array: the rows
    before the first one with class id 0."""
    zero_ix = np.where(detections[:, 4] == 0)[0]
    return int(zero_ix[0]) if zero_ix.shape[0] > 0 else detections.shape[0]


def boxes_to_original(boxes, original_image_shape, image_shape, window):
    """Normalized boxes in the molded frame -> int pixels of the original.

    boxes: [N, (y1, x1, y2, x2)] normalized to the molded image.
    window: [y1, x1, y2, x2] pixels of the image inside the molded frame.
    Returns [N, (y1, x1, y2, x2)] int32 pixels of the original image.
    """
    # From the normalized frame of the molded image to the window, then to
    # pixels of the original image.
    window = norm_boxes(window, image_shape[:2])
    wy1, wx1, wy2, wx2 = window
    shift = np.array([wy1, wx1, wy1, wx1])
    scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    boxes = np.divide(boxes - shift, scale)
    return denorm_boxes(boxes, original_image_shape[:2])


def linear_resize_matrix(out_size, in_size):
    """Weights of skimage's order-1 resize along one axis.

    Output sample k reads the input at c = (k + 0.5) * in_size / out_size
    - 0.5 (pixel centres aligned, as ndimage's grid mode), interpolating
    between samples floor(c) and floor(c) + 1; samples outside the input
    are zeros (mode "constant", cval 0).
    Returns float64 [out_size, in_size]; resized = R @ signal.
    """
    position = (np.arange(out_size, dtype=np.float64) + 0.5) * (
        in_size / out_size) - 0.5
    below = np.floor(position)
    weight_below = 1.0 - (position - below)
    weight_above = 1.0 - weight_below
    below = below.astype(np.int64)
    matrix = np.zeros((out_size, in_size + 2), dtype=np.float64)
    rows = np.arange(out_size)
    # Column j + 1 holds input sample j; columns 0 and in_size + 1 are the
    # zero border, dropped below.
    matrix[rows, below + 1] = weight_below
    matrix[rows, below + 2] = weight_above
    return matrix[:, 1:-1]


def resize_mask(mask, height, width):
    """skimage.transform.resize(mask, (height, width), order=1,
    mode="constant", anti_aliasing=False) of a 2D float mask (what
    unmold_mask uses), as two matrix products.

    mask: [h, w] float. Returns float64 [height, width], clipped to the
    mask's own value range as skimage clips.
    """
    mask = np.asarray(mask, dtype=np.float64)
    rows = linear_resize_matrix(height, mask.shape[0])
    columns = linear_resize_matrix(width, mask.shape[1])
    # The cheaper order: the narrow mask times the columns first.
    resized = rows @ (mask @ columns.T)
    return np.clip(resized, mask.min(), mask.max(), out=resized)


def paste_masks(masks, boxes, image_shape):
    """Pastes small per-box masks into full-size boolean masks.

    Same result as stacking unmold_mask(mask, box, image_shape) of
    each mask; boxes reaching outside the image are cropped to it, boxes
    without area give empty masks.

    masks: [N, h, w] float in [0, 1], one per box.
    boxes: [N, (y1, x1, y2, x2)] int pixels in the target image.
    image_shape: (height, width).
    Returns: [height, width, N] bool (thresholded at 0.5), a view of an
    instance-major [N, height, width] array.
    """
    height, width = (int(d) for d in image_shape[:2])
    masks = np.asarray(masks)
    boxes = np.asarray(boxes).reshape(-1, 4).astype(np.int64)
    if len(masks) != len(boxes):
        raise ValueError("paste_masks: {} masks but {} boxes".format(
            len(masks), len(boxes)))
    full = np.zeros((len(masks), height, width), dtype=bool)
    for mask, box, target in zip(masks, boxes, full):
        _paste_one(mask, box, target)
    return np.moveaxis(full, 0, -1)


# unmold_mask compares skimage's float32 output with 0.5. A float64 value
# rounds to a float32 >= 0.5 exactly when it is >= 0.5 - 2**-26 (the
# midpoint below 0.5, which rounds to the even 0.5), so comparing the
# float64 interpolation with this bound needs no float32 copy.
_FLOAT64_THRESHOLD = MASK_THRESHOLD - 2.0 ** -26
# Output elements per matrix product: blocks this small stay in cache and
# run on the calling thread (OpenBLAS threads only larger products, and its
# threads spin badly on a busy machine).
_BLOCK_ELEMENTS = 8192


def _paste_one(mask, box, target):
    """Writes one thresholded, resized mask into target [H, W] (in place)."""
    y1, x1, y2, x2 = (int(v) for v in box)
    # The part of the box inside the image.
    top, left = max(y1, 0), max(x1, 0)
    bottom, right = min(y2, target.shape[0]), min(x2, target.shape[1])
    if y2 <= y1 or x2 <= x1 or bottom <= top or right <= left:
        return
    region = target[top:bottom, left:right]
    mask = np.asarray(mask, dtype=np.float64)
    # skimage clips its output to [mask.min(), mask.max()]: with the whole
    # mask below (above) the threshold, the box is empty (full).
    low, high = mask.min(), mask.max()
    if high < _FLOAT64_THRESHOLD:
        return
    if low >= _FLOAT64_THRESHOLD:
        region[...] = True
        return
    # Only the rows and columns of the box that are inside the image.
    rows = linear_resize_matrix(y2 - y1, mask.shape[0])[top - y1:bottom - y1]
    columns = mask @ linear_resize_matrix(
        x2 - x1, mask.shape[1])[left - x1:right - x1].T
    step = max(1, _BLOCK_ELEMENTS // columns.shape[1])
    for start in range(0, rows.shape[0], step):
        np.greater_equal(rows[start:start + step] @ columns,
                         _FLOAT64_THRESHOLD, out=region[start:start + step])
