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

Importing this module does not import TensorFlow.
"""

import colorsys
import itertools
import random

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import lines, patches
from skimage.measure import find_contours

# Backends that cannot show a window: plt.show() would only warn there.
_NON_INTERACTIVE_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg",
                             "template"}

# ITU-R 709 luma weights (as skimage.color.rgb2gray); applied to the raw
# values so any dtype keeps its own scale.
_LUMA_WEIGHTS = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)


############################################################
#  Figure plumbing
############################################################

def _is_interactive_backend():
    """True when plt.show() can display something (GUI or Jupyter inline)."""
    return matplotlib.get_backend().lower() not in _NON_INTERACTIVE_BACKENDS


def _figure_and_axes(ax, figsize):
    """Returns (figure, axes, created): the given axes or a fresh figure."""
    if ax is not None:
        return ax.figure, ax, False
    fig, ax = plt.subplots(1, figsize=figsize)
    return fig, ax, True


def _finish(fig, created, save_path):
    """Saves the figure if asked, then shows it (returns None) or releases
    it from pyplot (returns it).

    Only a figure this module created is shown/closed: one drawn on the
    caller's axes belongs to the caller.
    """
    if save_path is not None:
        fig.savefig(save_path)
    if created:
        if _is_interactive_backend():
            plt.show()
            return None
        plt.close(fig)
    return fig


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


############################################################
#  Colors and masks on images
############################################################

def random_colors(N, bright=True):
    """Generates N visually distinct colors in random order.

    Evenly spaced hues in HSV, converted to RGB.
    Returns: list of N (r, g, b) tuples with values in [0, 1].
    """
    brightness = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / N, 1, brightness) for i in range(N)]
    random.shuffle(colors)
    return colors


def apply_mask(image, mask, color, alpha=0.5):
    """Blends a color into the image where mask == 1, in place.

    image: [height, width, 3] in 0..255 (any numeric dtype).
    mask: [height, width] binary.
    color: (r, g, b) in [0, 1].
    Returns the same (modified) image array.
    """
    for c in range(3):
        image[:, :, c] = np.where(
            mask == 1,
            image[:, :, c] * (1 - alpha) + alpha * color[c] * 255,
            image[:, :, c])
    return image


def apply_masks_fast(image, masks, colors=None, alpha=0.5):
    """Blends many instance masks into an image in one vectorized pass.

    Where instances overlap, the pixel takes the color of the instance with
    the highest index (the one drawn last), blended once; unlike repeated
    apply_mask calls, overlaps are not blended twice.

    image: [height, width, 3] in 0..255.
    masks: [height, width, N] binary.
    colors: N (r, g, b) tuples in [0, 1]; random_colors(N) when None.
    Returns a new array with the image's dtype.
    """
    masks = np.asarray(masks).astype(bool)
    if masks.ndim != 3 or masks.shape[:2] != image.shape[:2]:
        raise ValueError("masks shape {} must be [height, width, N] with the "
                         "image's height and width {}".format(
                             masks.shape, image.shape[:2]))
    count = masks.shape[-1]
    result = image.astype(np.float32)
    if count == 0:
        return result.astype(image.dtype)
    colors = random_colors(count) if colors is None else colors
    palette = np.asarray(colors, dtype=np.float32)[:, :3] * 255
    covered = masks.any(axis=-1)
    # argmax on the reversed axis finds the last True instance per pixel.
    top = count - 1 - np.argmax(masks[:, :, ::-1], axis=-1)
    result[covered] = (result[covered] * (1 - alpha)
                       + alpha * palette[top[covered]])
    if np.issubdtype(image.dtype, np.integer):
        result = np.clip(np.round(result), 0, np.iinfo(image.dtype).max)
    return result.astype(image.dtype)


def color_splash(image, mask):
    """Grayscale copy of the image with the masked instances kept in color.

    image: [height, width, 3] RGB.
    mask: [height, width, N] (or [height, width]) instance masks.
    Returns: [height, width, 3] with the image's dtype.
    """
    gray = np.dot(image[..., :3].astype(np.float32), _LUMA_WEIGHTS)
    gray = np.repeat(gray[..., None], 3, axis=-1)
    mask = np.asarray(mask)
    if mask.ndim == 2:
        mask = mask[..., None]
    if mask.shape[-1] == 0:
        return gray.astype(image.dtype)
    keep_color = mask.astype(bool).any(axis=-1, keepdims=True)
    return np.where(keep_color, image[..., :3], gray).astype(image.dtype)


def draw_box(image, box, color):
    """Draws a 2-pixel-wide box outline into the image array, in place.

    box: [y1, x1, y2, x2] integer pixel coordinates.
    color: a value per channel, e.g. (255, 0, 0).
    Returns the same image array.
    """
    y1, x1, y2, x2 = box
    image[y1:y1 + 2, x1:x2] = color
    image[y2:y2 + 2, x1:x2] = color
    image[y1:y2, x1:x1 + 2] = color
    image[y1:y2, x2:x2 + 2] = color
    return image


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


def _visibility_style(visibility, color):
    """(color, line style, alpha) for draw_boxes' visibility levels."""
    if visibility == 0:
        return "gray", "dotted", 0.5
    if visibility == 1:
        return color, "dotted", 1
    return color, "solid", 1


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
    return _finish(fig, created, save_path)


############################################################
#  Tables
############################################################

def display_table(table):
    """Displays a list of rows (lists of values) as an HTML table.

    Inside IPython/Jupyter the table is rendered; elsewhere it is printed as
    aligned plain text. Returns the HTML string.
    """
    html = "".join(
        "<tr>" + "".join("<td>{:40}</td>".format(str(col)) for col in row)
        + "</tr>" for row in table)
    html = "<table>" + html + "</table>"
    shell = None
    try:
        from IPython import get_ipython
        shell = get_ipython()
    except ImportError:
        pass
    if shell is not None:
        from IPython.display import HTML, display
        display(HTML(html))
    else:
        for row in table:
            print("  ".join("{:40}".format(str(col)) for col in row))
    return html


def _layers_with_weights(layers):
    """Flattens nested models and TimeDistributed wrappers to weight layers."""
    found = []
    for layer in layers:
        inner = getattr(layer, "layer", None)  # TimeDistributed and co.
        if inner is not None and inner.weights:
            found.append(inner)
        elif hasattr(layer, "layers") and layer.layers:
            found.extend(_layers_with_weights(layer.layers))
        elif layer.weights:
            found.append(layer)
    return found


def display_weight_stats(model):
    """Displays min/max/std of each weight tensor, flagging odd ones.

    model: a MaskRCNN (its get_trainable_layers() or keras_model is used)
    or a Keras model. "dead?" marks a constant tensor (other than a Conv2D
    bias), "Overflow?" a value beyond +-1000.
    Returns the table rows (header first).
    """
    if hasattr(model, "get_trainable_layers"):
        layers = model.get_trainable_layers()
    else:
        layers = _layers_with_weights(getattr(model, "keras_model", model)
                                      .layers)
    table = [["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]]
    for layer in layers:
        for i, (variable, values) in enumerate(zip(layer.weights,
                                                   layer.get_weights())):
            # Keras 3 keeps the full "layer/weight" name in .path.
            name = getattr(variable, "path", None) or variable.name
            alert = ""
            is_conv_bias = layer.__class__.__name__ == "Conv2D" and i == 1
            if values.min() == values.max() and not is_conv_bias:
                alert += "<span style='color:red'>*** dead?</span>"
            if np.abs(values.min()) > 1000 or np.abs(values.max()) > 1000:
                alert += "<span style='color:red'>*** Overflow?</span>"
            table.append([name + alert, str(values.shape),
                          "{:+9.4f}".format(values.min()),
                          "{:+10.4f}".format(values.max()),
                          "{:+9.4f}".format(values.std())])
    display_table(table)
    return table
