"""From network outputs to detections in original image coordinates."""

import numpy as np

from mrcnn import utils


def unmold_detections(detections, mrcnn_mask, original_image_shape,
                      image_shape, window):
    """Turns one image's detections into original-image coordinates.

    detections: [N, (y1, x1, y2, x2, class_id, score)] normalized, zero rows
        at the end are padding.
    mrcnn_mask: [N, height, width, num_classes] mask probabilities.
    original_image_shape: [H, W, C] before resizing.
    image_shape: [H, W, C] of the molded image.
    window: [y1, x1, y2, x2] pixels, the image inside the molded frame.
    Returns boxes [N, (y1, x1, y2, x2)] int pixels, class_ids [N] int32,
    scores [N] float32, masks [H, W, N] bool at the original size.
    """
    zero_ix = np.where(detections[:, 4] == 0)[0]
    n = zero_ix[0] if zero_ix.shape[0] > 0 else detections.shape[0]
    boxes = detections[:n, :4]
    class_ids = detections[:n, 4].astype(np.int32)
    scores = detections[:n, 5].astype(np.float32)
    masks = mrcnn_mask[np.arange(n), :, :, class_ids]

    # From the normalized frame of the molded image to the window, then to
    # pixels of the original image.
    window = utils.norm_boxes(window, image_shape[:2])
    wy1, wx1, wy2, wx2 = window
    shift = np.array([wy1, wx1, wy1, wx1])
    scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
    boxes = np.divide(boxes - shift, scale)
    boxes = utils.denorm_boxes(boxes, original_image_shape[:2])

    keep = np.where((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
                    > 0)[0]
    boxes, class_ids = boxes[keep], class_ids[keep]
    scores, masks = scores[keep], masks[keep]
    full_masks = paste_masks(masks, boxes, original_image_shape[:2])
    return boxes, class_ids, scores, full_masks


def paste_masks(masks, boxes, image_shape):
    """Pastes small per-box masks into full-size boolean masks.

    masks: [N, h, w] float in [0, 1], one per box.
    boxes: [N, (y1, x1, y2, x2)] int pixels in the target image.
    image_shape: (height, width).
    Returns: [height, width, N] bool (thresholded at 0.5).
    """
    full = np.zeros(tuple(image_shape[:2]) + (len(masks),), dtype=bool)
    for i, (mask, box) in enumerate(zip(masks, boxes)):
        full[..., i] = utils.unmold_mask(mask, box, image_shape)
    return full
