"""What the figures of mrcnn.visualize draw on a matplotlib Axes.

The figure side (a new figure or the caller's axes, saving, showing) stays
in ``mrcnn.visualize``; these helpers only add patches, lines, text and the
masked image to the axes they are given. Boxes are (y1, x1, y2, x2) pixels.
"""

import matplotlib
import numpy as np
from matplotlib import lines, patches
from skimage.measure import find_contours

from mrcnn.drawing.images import apply_mask


def _class_label(class_names, class_id):
    """Name of a class id, with a clear error for an id without a name."""
    class_id = int(class_id)
    if not 0 <= class_id < len(class_names):
        raise ValueError("class id {} has no name: class_names has {} entries"
                         .format(class_id, len(class_names)))
    return class_names[class_id]


def _add_mask_outline(ax, mask, color):
    """Draws the outline of a binary mask [height, width] as polygons."""
    # Pad so that masks touching the image border still give closed contours.
    padded = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=np.uint8)
    padded[1:-1, 1:-1] = mask
    for verts in find_contours(padded, 0.5):
        # (row, col) -> (x, y), and undo the padding offset.
        xy = np.fliplr(verts) - 1
        ax.add_patch(patches.Polygon(xy, facecolor="none", edgecolor=color))


def _check_instances(boxes, masks, class_ids):
    """Raises if boxes [N, 4], masks [H, W, N] and class_ids [N] disagree."""
    counts = {"boxes": boxes.shape[0], "class_ids": class_ids.shape[0]}
    if masks is not None:
        counts["masks (last axis)"] = masks.shape[-1]
    if len(set(counts.values())) > 1:
        raise ValueError("instance counts differ: {}".format(
            ", ".join("{}={}".format(k, v) for k, v in counts.items())))


def _visibility_style(visibility, color):
    """(color, line style, alpha) for draw_boxes' visibility levels."""
    if visibility == 0:
        return "gray", "dotted", 0.5
    if visibility == 1:
        return color, "dotted", 1
    return color, "solid", 1


def draw_instances_on(ax, image, boxes, masks, class_ids, class_names,
                      scores, colors, captions, show_mask, show_bbox):
    """display_instances' drawing: dashed boxes, captions ("class score"
    unless captions are given), blended masks with outlines, and the image.

    image: [height, width, 3] in 0..255; boxes: [N, (y1, x1, y2, x2)]
    pixels (all-zero rows skipped); masks: [height, width, N] or None;
    colors: N (r, g, b) in [0, 1].
    """
    count = boxes.shape[0]
    masked_image = image.astype(np.float32).copy()
    for i in range(count):
        color = colors[i]
        # An all-zero box is padding (e.g. an instance lost to cropping).
        if not np.any(boxes[i]):
            continue
        y1, x1, y2, x2 = boxes[i]
        if show_bbox:
            ax.add_patch(patches.Rectangle(
                (x1, y1), x2 - x1, y2 - y1, linewidth=2, alpha=0.7,
                linestyle="dashed", edgecolor=color, facecolor="none"))
        if captions is None:
            label = _class_label(class_names, class_ids[i])
            score = scores[i] if scores is not None else None
            caption = ("{} {:.3f}".format(label, score) if score is not None
                       else label)
        else:
            caption = captions[i]
        ax.text(x1, y1 + 8, caption, color="w", size=11,
                backgroundcolor="none")
        if masks is None:
            continue
        mask = masks[:, :, i]
        if show_mask:
            masked_image = apply_mask(masked_image, mask, color)
        _add_mask_outline(ax, mask, color)
    ax.imshow(np.clip(masked_image, 0, 255).astype(np.uint8))


def draw_boxes_on(ax, image, boxes, refined_boxes, masks, captions,
                  visibilities, colors):
    """draw_boxes' drawing: boxes styled by visibility, refined boxes joined
    to their box, captions, blended masks with outlines, and the image.

    boxes, refined_boxes: [N, (y1, x1, y2, x2)] pixels (either may be
    None); masks: [height, width, N] or None; visibilities: N values in
    {0, 1, 2} or None (all 1); colors: N (r, g, b) in [0, 1].
    """
    count = boxes.shape[0] if boxes is not None else refined_boxes.shape[0]
    masked_image = image.astype(np.float32).copy()
    for i in range(count):
        visibility = visibilities[i] if visibilities is not None else 1
        color, style, alpha = _visibility_style(visibility, colors[i])
        if boxes is not None:
            if not np.any(boxes[i]):
                continue  # all-zero box is padding
            y1, x1, y2, x2 = boxes[i]
            ax.add_patch(patches.Rectangle(
                (x1, y1), x2 - x1, y2 - y1, linewidth=2, alpha=alpha,
                linestyle=style, edgecolor=color, facecolor="none"))
        if refined_boxes is not None and visibility > 0:
            ry1, rx1, ry2, rx2 = refined_boxes[i].astype(np.int32)
            ax.add_patch(patches.Rectangle(
                (rx1, ry1), rx2 - rx1, ry2 - ry1, linewidth=2,
                edgecolor=color, facecolor="none"))
            if boxes is not None:
                ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
        if captions is not None:
            if refined_boxes is not None:
                y1, x1 = refined_boxes[i][:2]
            ax.text(x1, y1, captions[i], size=11, verticalalignment="top",
                    color="w", backgroundcolor="none",
                    bbox={"facecolor": color, "alpha": 0.5, "pad": 2,
                          "edgecolor": "none"})
        if masks is not None:
            mask = masks[:, :, i]
            # A color name like "gray" has no channels to blend with.
            rgb = matplotlib.colors.to_rgb(color)
            masked_image = apply_mask(masked_image, mask, rgb)
            _add_mask_outline(ax, mask, color)
    ax.imshow(np.clip(masked_image, 0, 255).astype(np.uint8))
