"""Mask R-CNN display and visualization functions.

Same public API as matterport's ``mrcnn.visualize``. Two differences make it
usable both inline in Jupyter and on a headless machine:

* Every display function accepts a ``save_path=None`` keyword that writes
  the figure as a PNG.
* When the function created the figure itself and the backend is
  interactive (a GUI or Jupyter's inline backend), it calls ``plt.show()``
  and returns None, as the original did (so a notebook shows the figure
  once). On a non-interactive backend such as Agg it closes the figure from
  pyplot and returns the ``Figure``, which can still be saved, so scripts
  and tests do not pile up open figures. Drawn on the caller's ``ax``, it
  returns the caller's figure and leaves it open.

The numpy drawing helpers (random_colors, apply_mask, ...) live in
``mrcnn.drawing.images``, the tables in ``mrcnn.drawing.tables`` and what the figures draw
on their axes in ``mrcnn.drawing.axes``; all are re-exported here.

Importing this module does not import TensorFlow.
"""

import itertools

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import lines, patches

from mrcnn.drawing.axes import (_check_instances, _class_label, draw_boxes_on,
                                draw_instances_on)
# Re-exports: the original mrcnn.visualize kept all of these in one file.
from mrcnn.drawing.images import (apply_mask, apply_masks_fast,  # noqa: F401
                                  color_splash, draw_box, random_colors)
from mrcnn.drawing.tables import display_table, display_weight_stats  # noqa: F401
from mrcnn.drawing.figures import (_NON_INTERACTIVE_BACKENDS,  # noqa: F401
                                   _figure_and_axes, _finish,
                                   _is_interactive_backend)
from mrcnn.evaluation.plots import (plot_confusion_matrix,  # noqa: F401
                                    plot_per_class_ap)

############################################################
#  Colors and masks on images
############################################################

############################################################
#  Figures
############################################################

def display_images(images, titles=None, cols=4, cmap=None, norm=None,
                   interpolation=None, save_path=None):
    """Displays images side by side in a grid, with optional titles.

    images: list of [height, width(, 3)] arrays, cast to uint8 for display.
    Returns the Figure.
    """
    titles = titles if titles is not None else [""] * len(images)
    rows = max(1, int(np.ceil(len(images) / cols)))
    fig = plt.figure(figsize=(14, 14 * rows / cols))
    for i, (image, title) in enumerate(zip(images, titles)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        ax.imshow(np.asarray(image).astype(np.uint8), cmap=cmap, norm=norm,
                  interpolation=interpolation)
    return _finish(fig, True, save_path)


def display_instances(image, boxes, masks, class_ids, class_names,
                      scores=None, title="",
                      figsize=(16, 16), ax=None,
                      show_mask=True, show_bbox=True,
                      colors=None, captions=None, save_path=None):
    """Draws instances (boxes, masks, labels) over an image.

    image: [height, width, 3] in 0..255.
    boxes: [num_instances, (y1, x1, y2, x2)] in image pixels.
    masks: [height, width, num_instances] binary, or None.
    class_ids: [num_instances] int indices into class_names.
    scores: (optional) [num_instances] confidence scores.
    title: figure title.
    figsize: size of a new figure (used only when ax is None).
    ax: draw on these axes instead of a new figure.
    show_mask, show_bbox: whether to draw masks and boxes.
    colors: (optional) one (r, g, b) in [0, 1] per instance.
    captions: (optional) one string per instance, replacing "class score".
    save_path: (optional) write the figure to this PNG path.
    Returns the Figure.
    """
    boxes = np.asarray(boxes)
    class_ids = np.asarray(class_ids)
    count = boxes.shape[0]
    if not count:
        print("\n*** No instances to display *** \n")
    else:
        _check_instances(boxes, masks, class_ids)

    fig, ax, created = _figure_and_axes(ax, figsize)
    colors = random_colors(count) if colors is None else colors
    height, width = image.shape[:2]
    # A small margin keeps boxes on the border visible.
    ax.set_ylim(height + 10, -10)
    ax.set_xlim(-10, width + 10)
    ax.axis("off")
    ax.set_title(title)

    draw_instances_on(ax, image, boxes, masks, class_ids, class_names,
                      scores, colors, captions, show_mask, show_bbox)
    return _finish(fig, created, save_path)


def save_instances(path, image, boxes, masks, class_ids, class_names,
                   scores=None, **kwargs):
    """display_instances straight to a PNG file; returns the Figure.

    Unless figsize is given, the figure is sized so that the image is drawn
    at roughly its own resolution (100 dpi), at least 4 inches wide/high.
    Other keyword arguments go to display_instances.
    """
    if "figsize" not in kwargs:
        height, width = image.shape[:2]
        kwargs["figsize"] = (max(width / 100, 4), max(height / 100, 4))
    return display_instances(image, boxes, masks, class_ids, class_names,
                             scores=scores, save_path=path, **kwargs)


def display_differences(image,
                        gt_box, gt_class_id, gt_mask,
                        pred_box, pred_class_id, pred_score, pred_mask,
                        class_names, title="", ax=None,
                        show_mask=True, show_box=True,
                        iou_threshold=0.5, score_threshold=0.5,
                        save_path=None):
    """Draws ground truth (green) and detections (red) over one image.

    Detections are captioned "score / IoU", with the IoU of the matched
    ground truth instance (or the best overlap when unmatched).
    Boxes are [N, (y1, x1, y2, x2)] pixels, masks [height, width, N].
    Returns the Figure.
    """
    from mrcnn import utils  # lazy: utils may pull in TensorFlow

    gt_match, pred_match, overlaps = utils.compute_matches(
        gt_box, gt_class_id, gt_mask,
        pred_box, pred_class_id, pred_score, pred_mask,
        iou_threshold=iou_threshold, score_threshold=score_threshold)
    colors = ([(0, 1, 0, .8)] * len(gt_match)
              + [(1, 0, 0, 1)] * len(pred_match))
    class_ids = np.concatenate([gt_class_id, pred_class_id])
    scores = np.concatenate([np.zeros([len(gt_match)]), pred_score])
    boxes = np.concatenate([gt_box, pred_box])
    masks = np.concatenate([gt_mask, pred_mask], axis=-1)
    captions = [""] * len(gt_match) + [
        "{:.2f} / {:.2f}".format(
            pred_score[i],
            overlaps[i, int(pred_match[i])] if pred_match[i] > -1
            else (overlaps[i].max() if overlaps.shape[1] else 0.0))
        for i in range(len(pred_match))]
    title = title or ("Ground Truth and Detections\n "
                      "GT=green, pred=red, captions: score/IoU")
    return display_instances(
        image, boxes, masks, class_ids, class_names, scores, ax=ax,
        show_bbox=show_box, show_mask=show_mask, colors=colors,
        captions=captions, title=title, save_path=save_path)


def draw_rois(image, rois, refined_rois, mask, class_ids, class_names,
              limit=10, save_path=None):
    """Draws ROIs (dashed), their refined boxes and masks; prints stats.

    image: [height, width, 3].
    rois: [N, (y1, x1, y2, x2)] pixels.
    refined_rois: [N, (y1, x1, y2, x2)] pixels, the ROIs after box deltas.
    mask: [N, mask_height, mask_width] small float masks, one per ROI.
    class_ids: [N] int; 0 marks a negative (background) ROI.
    limit: show at most this many ROIs, picked at random.
    Returns the Figure.
    """
    from mrcnn import utils  # lazy: utils may pull in TensorFlow

    masked_image = image.copy()
    ids = np.arange(rois.shape[0], dtype=np.int32)
    if ids.shape[0] > limit:
        ids = np.random.choice(ids, limit, replace=False)
    fig, ax = plt.subplots(1, figsize=(12, 12))
    if rois.shape[0] > limit:
        ax.set_title("Showing {} random ROIs out of {}".format(
            len(ids), rois.shape[0]))
    else:
        ax.set_title("{} ROIs".format(len(ids)))
    ax.set_ylim(image.shape[0] + 20, -20)
    ax.set_xlim(-50, image.shape[1] + 20)
    ax.axis("off")

    for roi_id in ids:
        color = np.random.rand(3)
        class_id = class_ids[roi_id]
        y1, x1, y2, x2 = rois[roi_id]
        ax.add_patch(patches.Rectangle(
            (x1, y1), x2 - x1, y2 - y1, linewidth=2,
            edgecolor=color if class_id else "gray",
            facecolor="none", linestyle="dashed"))
        if not class_id:
            continue
        ry1, rx1, ry2, rx2 = refined_rois[roi_id]
        ax.add_patch(patches.Rectangle(
            (rx1, ry1), rx2 - rx1, ry2 - ry1, linewidth=2,
            edgecolor=color, facecolor="none"))
        # Joining the top-left corners shows how far the box moved.
        ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
        ax.text(rx1, ry1 + 8, _class_label(class_names, class_id),
                color="w", size=11, backgroundcolor="none")
        full_mask = utils.unmold_mask(
            mask[roi_id], rois[roi_id][:4].astype(np.int32), image.shape)
        masked_image = apply_mask(masked_image, full_mask, color)
    ax.imshow(masked_image)

    positives = int(np.sum(class_ids > 0))
    print("Positive ROIs: ", positives)
    print("Negative ROIs: ", int(np.sum(class_ids == 0)))
    print("Positive Ratio: {:.2f}".format(
        positives / max(class_ids.shape[0], 1)))
    return _finish(fig, True, save_path)


def display_top_masks(image, mask, class_ids, class_names, limit=4,
                      save_path=None):
    """Displays the image and the masks of its `limit` largest classes.

    mask: [height, width, num_instances]; class_ids: [num_instances].
    Instances of one class are drawn in one panel, numbered 1, 2, ...
    Returns the Figure.
    """
    to_display = [image]
    titles = ["H x W={}x{}".format(image.shape[0], image.shape[1])]
    unique_class_ids = np.unique(class_ids)
    mask_area = [np.sum(mask[:, :, np.where(class_ids == i)[0]])
                 for i in unique_class_ids]
    top_ids = [class_id for class_id, area in
               sorted(zip(unique_class_ids, mask_area),
                      key=lambda pair: pair[1], reverse=True)
               if area > 0]
    for i in range(limit):
        class_id = top_ids[i] if i < len(top_ids) else -1
        class_masks = mask[:, :, np.where(class_ids == class_id)[0]]
        # Instance k shows as value k so instances stay distinguishable.
        numbered = np.sum(
            class_masks * np.arange(1, class_masks.shape[-1] + 1), -1)
        to_display.append(numbered)
        titles.append(_class_label(class_names, class_id)
                      if class_id != -1 else "-")
    return display_images(to_display, titles=titles, cols=limit + 1,
                          cmap="Blues_r", save_path=save_path)


def plot_precision_recall(AP, precisions, recalls, save_path=None):
    """Plots the precision-recall curve.

    AP: average precision at IoU >= 0.5, shown in the title.
    precisions, recalls: lists/arrays of the same length.
    Returns the Figure.
    """
    fig, ax = plt.subplots(1)
    ax.set_title("Precision-Recall Curve. AP@50 = {:.3f}".format(AP))
    ax.set_ylim(0, 1.1)
    ax.set_xlim(0, 1.1)
    ax.plot(recalls, precisions)
    return _finish(fig, True, save_path)


def plot_overlaps(gt_class_ids, pred_class_ids, pred_scores,
                  overlaps, class_names, threshold=0.5, save_path=None):
    """Draws the grid of IoUs between ground truth and predicted instances.

    gt_class_ids: [num_gt] int, class 0 (padding) is dropped.
    pred_class_ids: [num_pred] int, class 0 (padding) is dropped.
    pred_scores: [num_pred] float.
    overlaps: [num_pred, num_gt] IoU values.
    threshold: cells above it are marked "match" (same class) or "wrong".
    Returns the Figure.
    """
    gt_class_ids = np.asarray(gt_class_ids)
    pred_class_ids = np.asarray(pred_class_ids)
    gt_class_ids = gt_class_ids[gt_class_ids != 0]
    pred_class_ids = pred_class_ids[pred_class_ids != 0]
    if overlaps.shape != (len(pred_class_ids), len(gt_class_ids)):
        raise ValueError("overlaps shape {} must be [num_pred={}, num_gt={}]"
                         .format(overlaps.shape, len(pred_class_ids),
                                 len(gt_class_ids)))

    fig, ax = plt.subplots(1, figsize=(12, 10))
    ax.imshow(overlaps, interpolation="nearest", cmap=plt.cm.Blues)
    ax.set_yticks(np.arange(len(pred_class_ids)), [
        "{} ({:.2f})".format(_class_label(class_names, class_id),
                             pred_scores[i])
        for i, class_id in enumerate(pred_class_ids)])
    ax.set_xticks(np.arange(len(gt_class_ids)),
                  [_class_label(class_names, class_id)
                   for class_id in gt_class_ids], rotation=90)

    # Text color flips to white on the darker half of the colormap.
    dark = overlaps.max() / 2. if overlaps.size else 0
    for i, j in itertools.product(range(overlaps.shape[0]),
                                  range(overlaps.shape[1])):
        verdict = ""
        if overlaps[i, j] > threshold:
            verdict = ("match" if gt_class_ids[j] == pred_class_ids[i]
                       else "wrong")
        color = ("white" if overlaps[i, j] > dark
                 else "black" if overlaps[i, j] > 0 else "grey")
        ax.text(j, i, "{:.3f}\n{}".format(overlaps[i, j], verdict),
                horizontalalignment="center", verticalalignment="center",
                fontsize=9, color=color)
    fig.tight_layout()
    ax.set_xlabel("Ground Truth")
    ax.set_ylabel("Predictions")
    return _finish(fig, True, save_path)


def draw_boxes(image, boxes=None, refined_boxes=None,
               masks=None, captions=None, visibilities=None,
               title="", ax=None, save_path=None):
    """Draws boxes, refined boxes, masks and captions over an image.

    Useful to show anchors, proposals and their refinements.
    boxes: [N, (y1, x1, y2, x2)] pixels, drawn dotted/solid by visibility.
    refined_boxes: like boxes, drawn solid and joined to the matching box.
    masks: [height, width, N].
    captions: N strings, placed at the (refined) box's top-left corner.
    visibilities: N values in {0, 1, 2}: 0 gray dotted, 1 dotted, 2 solid.
    Returns the Figure.
    """
    if boxes is None and refined_boxes is None:
        raise ValueError("draw_boxes needs boxes or refined_boxes")
    count = boxes.shape[0] if boxes is not None else refined_boxes.shape[0]
    fig, ax, created = _figure_and_axes(ax, (12, 12))
    colors = random_colors(count)
    margin = image.shape[0] // 10
    ax.set_ylim(image.shape[0] + margin, -margin)
    ax.set_xlim(-margin, image.shape[1] + margin)
    ax.axis("off")
    ax.set_title(title)

    draw_boxes_on(ax, image, boxes, refined_boxes, masks, captions,
                  visibilities, colors)
    return _finish(fig, created, save_path)
